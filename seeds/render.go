package seeds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"

	"github.com/applbuild/applbuild/roles/values"
)

// Seed is the rendered NoCloud seed of one VM.
type Seed struct {
	VM            VM
	InstanceID    string
	MetaData      []byte
	UserData      []byte
	NetworkConfig []byte
}

// Values returns the /etc/appliance/ values of one VM: site.json's content
// and the secrets for that VM's role only.
func (s *Site) Values(vm VM) (*values.Site, any) {
	v := &values.Site{
		Format:     values.Format,
		Site:       s.Name,
		VM:         vm.Name,
		Role:       vm.Role,
		Hostname:   vm.Name,
		FQDN:       s.FQDN(vm.Name),
		Network:    values.Network{Address: netip.PrefixFrom(vm.IP, s.Network.Prefix.Bits()), Gateway: s.Network.Gateway, DNS: s.Network.DNS, Search: s.Network.Search},
		Management: s.Management,
	}
	switch vm.Role {
	case values.RoleGateway:
		g := s.Gateway
		gws := s.ByRole(values.RoleGateway)
		if len(gws) == 2 {
			pair := &values.Pair{VIP: s.VIP, Priority: 100, RouterID: vrrpRouterID(s.Name)}
			for i, other := range gws {
				if other.Name == vm.Name {
					if i == 0 {
						pair.Priority = 150
					}
					continue
				}
				pair.Peers = append(pair.Peers, other.IP)
			}
			g.Pair = pair
		}
		v.Gateway = &g
		sec := s.Secrets.Gateway
		return v, &sec
	default:
		n := s.Node
		v.Node = &n
		sec := s.Secrets.Node
		sec.TLSCertificate, sec.TLSKey = string(s.TLS.NodeCertPEM), string(s.TLS.NodeKeyPEM)
		return v, &sec
	}
}

// vrrpRouterID derives a stable VRRP router id (1-255) from the site name,
// so two sites sharing a segment by accident do not take each other's VIP.
func vrrpRouterID(site string) int {
	h := sha256.Sum256([]byte("vrrp:" + site))
	return int(h[0])%254 + 1
}

// The cloud-config document. Field order here is the order in the file.
type cloudConfig struct {
	Hostname       string      `yaml:"hostname"`
	FQDN           string      `yaml:"fqdn,omitempty"`
	PreferFQDN     bool        `yaml:"prefer_fqdn_over_hostname"`
	ManageEtcHosts bool        `yaml:"manage_etc_hosts"`
	DisableRoot    bool        `yaml:"disable_root"`
	SSHPwauth      bool        `yaml:"ssh_pwauth"`
	SSHDeleteKeys  bool        `yaml:"ssh_deletekeys"`
	SSHGenKeyTypes []string    `yaml:"ssh_genkeytypes"`
	Users          []user      `yaml:"users"`
	WriteFiles     []writeFile `yaml:"write_files"`
	PackageUpdate  bool        `yaml:"package_update"`
	PackageUpgrade bool        `yaml:"package_upgrade"`
	PackageReboot  bool        `yaml:"package_reboot_if_required"`
	GrowPart       growPart    `yaml:"growpart"`
	ResizeRootfs   bool        `yaml:"resize_rootfs"`
}

type user struct {
	Name              string   `yaml:"name"`
	Gecos             string   `yaml:"gecos"`
	Shell             string   `yaml:"shell"`
	Groups            []string `yaml:"groups,flow"`
	Sudo              string   `yaml:"sudo"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

type growPart struct {
	Mode    string   `yaml:"mode"`
	Devices []string `yaml:"devices,flow"`
}

// Render renders the seed of one VM of a validated site.
func Render(s *Site, vm VM) (*Seed, error) {
	v, sec := s.Values(vm)
	siteJSON, err := values.Marshal(v)
	if err != nil {
		return nil, err
	}
	secJSON, err := values.Marshal(sec)
	if err != nil {
		return nil, err
	}
	files := []writeFile{
		{Path: values.Dir + "/" + values.SiteFile, Owner: "root:root", Permissions: "0644", Content: string(siteJSON)},
		{Path: values.Dir + "/" + values.SecretsFile, Owner: "root:root", Permissions: "0600", Content: string(secJSON)},
	}
	if vm.Role == values.RoleGateway && v.Gateway.Mode == values.ModeHTTP {
		pemBundle := append(append(bytes.TrimRight(s.TLS.CertPEM, "\n"), '\n'), s.TLS.KeyPEM...)
		files = append(files, writeFile{Path: values.Dir + "/" + values.ServerPEMFile, Owner: "root:root", Permissions: "0600", Content: string(pemBundle)})
		if len(s.TLS.BackendCAPEM) > 0 {
			files = append(files, writeFile{Path: values.Dir + "/" + values.BackendCAFile, Owner: "root:root", Permissions: "0644", Content: string(s.TLS.BackendCAPEM)})
		}
	}
	cc := cloudConfig{
		Hostname:       vm.Name,
		FQDN:           s.FQDN(vm.Name),
		ManageEtcHosts: true,
		DisableRoot:    true,
		SSHPwauth:      false,
		SSHDeleteKeys:  true,
		SSHGenKeyTypes: []string{"ed25519", "ecdsa"},
		Users: []user{{
			Name:              s.SSHUser,
			Gecos:             "appliance operator",
			Shell:             "/bin/bash",
			Groups:            []string{"adm", "systemd-journal"},
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			LockPasswd:        true,
			SSHAuthorizedKeys: s.SSHKeys,
		}},
		WriteFiles: files,
		// An appliance changes by a new image, never by installing at boot.
		PackageUpdate:  false,
		PackageUpgrade: false,
		PackageReboot:  false,
		GrowPart:       growPart{Mode: "auto", Devices: []string{"/"}},
		ResizeRootfs:   true,
	}
	ud, err := marshalYAML("#cloud-config\n# Rendered by applbuild for "+s.Name+"/"+vm.Name+"; do not edit, regenerate with applbuild seed.\n", cc)
	if err != nil {
		return nil, err
	}
	nc, err := marshalYAML("", networkConfig(s, vm))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(vm.Name), ud, nc} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	iid := fmt.Sprintf("%s-%s-%s", s.Name, vm.Name, hex.EncodeToString(h.Sum(nil))[:16])
	md, err := marshalYAML("", struct {
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname"`
	}{iid, vm.Name})
	if err != nil {
		return nil, err
	}
	return &Seed{VM: vm, InstanceID: iid, MetaData: md, UserData: ud, NetworkConfig: nc}, nil
}

type netConfig struct {
	Network struct {
		Version   int                 `yaml:"version"`
		Ethernets map[string]ethernet `yaml:"ethernets"`
	} `yaml:"network"`
}

type ethernet struct {
	Match       map[string]string `yaml:"match"`
	SetName     string            `yaml:"set-name,omitempty"`
	DHCP4       bool              `yaml:"dhcp4"`
	DHCP6       bool              `yaml:"dhcp6"`
	Addresses   []string          `yaml:"addresses"`
	Routes      []route           `yaml:"routes"`
	Nameservers nameservers       `yaml:"nameservers"`
}

type route struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
}

type nameservers struct {
	Addresses []string `yaml:"addresses"`
	Search    []string `yaml:"search,omitempty"`
}

// networkConfig renders network-config version 2: one static interface,
// matched by MAC when the site gives one, otherwise the first ethernet NIC
// (ens18 on Proxmox virtio, eth0 on Hyper-V).
func networkConfig(s *Site, vm VM) netConfig {
	var nc netConfig
	nc.Network.Version = 2
	eth := ethernet{
		Addresses: []string{netip.PrefixFrom(vm.IP, s.Network.Prefix.Bits()).String()},
		Routes:    []route{{To: "0.0.0.0/0", Via: s.Network.Gateway.String()}},
	}
	if vm.MAC != "" {
		eth.Match = map[string]string{"macaddress": vm.MAC}
		eth.SetName = "eth0"
	} else {
		eth.Match = map[string]string{"name": "e*"}
	}
	for _, d := range s.Network.DNS {
		eth.Nameservers.Addresses = append(eth.Nameservers.Addresses, d.String())
	}
	eth.Nameservers.Search = s.Network.Search
	nc.Network.Ethernets = map[string]ethernet{"site0": eth}
	return nc
}

func marshalYAML(header string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
