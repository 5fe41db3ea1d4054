package seeds

// The raw shape of a site file, as written by a user. Every field is kept as
// the text the user wrote, so that validation (validate.go) can say exactly
// what is wrong and where; the typed Site it produces is what the rest of the
// program uses. docs/site-file.md documents every field.

type rawSite struct {
	Site       string        `yaml:"site"`
	Domain     string        `yaml:"domain"`
	Network    rawNetwork    `yaml:"network"`
	Management rawManagement `yaml:"management"`
	SSH        rawSSH        `yaml:"ssh"`
	VMs        []rawVM       `yaml:"vms"`
	Gateway    rawGateway    `yaml:"gateway"`
	Node       rawNode       `yaml:"node"`
	Secrets    string        `yaml:"secrets"`
}

type rawNetwork struct {
	CIDR    string   `yaml:"cidr"`
	Gateway string   `yaml:"gateway"`
	DNS     []string `yaml:"dns"`
	Search  []string `yaml:"search"`
}

type rawManagement struct {
	CIDRs []string `yaml:"cidrs"`
}

type rawSSH struct {
	User           string   `yaml:"user"`
	AuthorizedKeys []string `yaml:"authorized_keys"`
}

type rawVM struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	IP   string `yaml:"ip"`
	MAC  string `yaml:"mac"`
}

type rawGateway struct {
	Mode          string           `yaml:"mode"`
	VIP           string           `yaml:"vip"`
	ServerNames   []string         `yaml:"server_names"`
	TLS           rawTLS           `yaml:"tls"`
	Backends      []rawBackend     `yaml:"backends"`
	BackendTLS    rawBackendTLS    `yaml:"backend_tls"`
	API           rawAPI           `yaml:"api"`
	RateLimits    rawRateLimits    `yaml:"rate_limits"`
	JA4           rawJA4           `yaml:"ja4"`
	KubernetesAPI rawKubernetesAPI `yaml:"kubernetes_api"`
}

type rawTLS struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
}

type rawBackend struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Port    *int   `yaml:"port"`
}

type rawBackendTLS struct {
	CA         string `yaml:"ca"`
	ServerName string `yaml:"server_name"`
}

type rawAPI struct {
	PathPrefix  string   `yaml:"path_prefix"`
	PublicPaths []string `yaml:"public_paths"`
	Methods     []string `yaml:"methods"`
	MaxBody     string   `yaml:"max_body"`
	HealthPath  string   `yaml:"health_path"`
}

type rawRateLimits struct {
	Login  rawLoginLimit `yaml:"login"`
	Global rawLimit      `yaml:"global"`
}

type rawLimit struct {
	Requests *int   `yaml:"requests"`
	Period   string `yaml:"period"`
}

type rawLoginLimit struct {
	Requests *int     `yaml:"requests"`
	Period   string   `yaml:"period"`
	Paths    []string `yaml:"paths"`
}

type rawJA4 struct {
	Enabled   *bool    `yaml:"enabled"`
	Blocklist []string `yaml:"blocklist"`
}

type rawKubernetesAPI struct {
	Port        *int `yaml:"port"`
	ReadyStatus *int `yaml:"ready_status"`
}

type rawNode struct {
	TrustedProxies []string `yaml:"trusted_proxies"`
	IngressPort    *int     `yaml:"ingress_port"`
	TLS            rawTLS   `yaml:"tls"`
}

// rawSecrets is the separate secrets file a site file points at.
type rawSecrets struct {
	Gateway    rawGatewaySecrets `yaml:"gateway"`
	APIServer2 rawAPIServer2     `yaml:"apiserver2"`
	MicroK8s   rawMicroK8s       `yaml:"microk8s"`
}

type rawGatewaySecrets struct {
	StatsUser     string `yaml:"stats_user"`
	StatsPassword string `yaml:"stats_password"`
}

type rawAPIServer2 struct {
	JWTSecret     string            `yaml:"jwt_secret"`
	APIKey        string            `yaml:"api_key"`
	DBConnections map[string]string `yaml:"db_connections"`
	Env           map[string]string `yaml:"env"`
}

type rawMicroK8s struct {
	EncryptionKey string `yaml:"encryption_key"`
}
