package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// LaunchConfiguration is MicroK8s's launch configuration, format 0.1.0.
//
// Transcribed, not imported: the Go module
// github.com/canonical/microk8s-cluster-agent (package pkg/k8sinit) is
// not served by the module proxy this project builds with. The fields are
// those of pkg/k8sinit/schema.go as documented at
// https://pkg.go.dev/github.com/canonical/microk8s-cluster-agent/pkg/k8sinit
// and exercised by pkg/k8sinit/testdata/schema/full.yaml (commit
// b90ef104ab0ae0487a22adbf75509b70f8861c18), and in the reference
// https://canonical.com/microk8s/docs/ref-launch-config ("Launch
// configurations version 0.1.0", MicroK8s 1.27 and newer).
// MicroK8s itself only warns on unknown fields and then ignores them;
// ParseLaunchConfig refuses them, so a misspelt key fails here rather than
// silently doing nothing on a node.
type LaunchConfiguration struct {
	Version                        string                  `yaml:"version"`
	PersistentClusterToken         string                  `yaml:"persistentClusterToken,omitempty"`
	Join                           *LaunchJoin             `yaml:"join,omitempty"`
	ExtraSANs                      []string                `yaml:"extraSANs,omitempty"`
	AddonRepositories              []LaunchAddonRepository `yaml:"addonRepositories,omitempty"`
	Addons                         []LaunchAddon           `yaml:"addons,omitempty"`
	ExtraKubeletArgs               map[string]*string      `yaml:"extraKubeletArgs,omitempty"`
	ExtraKubeAPIServerArgs         map[string]*string      `yaml:"extraKubeAPIServerArgs,omitempty"`
	ExtraKubeProxyArgs             map[string]*string      `yaml:"extraKubeProxyArgs,omitempty"`
	ExtraKubeControllerManagerArgs map[string]*string      `yaml:"extraKubeControllerManagerArgs,omitempty"`
	ExtraKubeSchedulerArgs         map[string]*string      `yaml:"extraKubeSchedulerArgs,omitempty"`
	ExtraContainerdArgs            map[string]*string      `yaml:"extraContainerdArgs,omitempty"`
	ExtraContainerdEnv             map[string]*string      `yaml:"extraContainerdEnv,omitempty"`
	ExtraDqliteArgs                map[string]*string      `yaml:"extraDqliteArgs,omitempty"`
	ExtraDqliteEnv                 map[string]*string      `yaml:"extraDqliteEnv,omitempty"`
	ExtraConfigFiles               map[string]string       `yaml:"extraConfigFiles,omitempty"`
	ContainerdRegistryConfigs      map[string]string       `yaml:"containerdRegistryConfigs,omitempty"`
}

// LaunchJoin joins the node to an existing cluster.
type LaunchJoin struct {
	URL    string `yaml:"url"`
	Worker bool   `yaml:"worker"`
}

// LaunchAddon enables (or, with Disable, disables) an addon.
type LaunchAddon struct {
	Name    string   `yaml:"name"`
	Disable bool     `yaml:"disable,omitempty"`
	Args    []string `yaml:"args,omitempty"`
}

// LaunchAddonRepository adds an addon repository.
type LaunchAddonRepository struct {
	Name      string `yaml:"name"`
	URL       string `yaml:"url"`
	Reference string `yaml:"reference,omitempty"`
}

// LaunchConfigVersion is the only format MicroK8s 1.35 reads (its minimum
// and maximum supported versions are both 0.1.0).
const LaunchConfigVersion = "0.1.0"

// ParseLaunchConfig decodes one launch configuration strictly: unknown
// keys, wrong types, a version other than 0.1.0 and nameless addons are
// errors.
func ParseLaunchConfig(data []byte) (*LaunchConfiguration, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c LaunchConfiguration
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("launch configuration is empty")
		}
		return nil, fmt.Errorf("launch configuration: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var more LaunchConfiguration
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("launch configuration: one document expected")
	}
	if c.Version != LaunchConfigVersion {
		return nil, fmt.Errorf("launch configuration: version %q is not supported; MicroK8s reads %s", c.Version, LaunchConfigVersion)
	}
	for i, a := range c.Addons {
		if a.Name == "" {
			return nil, fmt.Errorf("launch configuration: addons[%d] has no name", i)
		}
	}
	return &c, nil
}
