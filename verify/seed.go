// Package verify boots an appliance image with a seed ISO under QEMU and
// proves, from outside the VM, that it serves its site: the probes a person
// would make, with the boot's timings.
package verify

import (
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/kdomanski/iso9660"
	"gopkg.in/yaml.v3"

	"github.com/applbuild/applbuild/roles/values"
)

// Seed is what verify reads back from a seed ISO: the VM's identity and
// the values its appliance will apply.
type Seed struct {
	InstanceID string
	Hostname   string
	Site       *values.Site
	// CertPEM is the gateway's certificate chain (no key).
	CertPEM []byte
	// MAC is the NIC MAC the network config matches, if any.
	MAC string
	// SSHUser is the operator account the seed creates, with its
	// authorised keys.
	SSHUser string
	SSHKeys []string
}

// ReadSeed reads a NoCloud seed ISO as cloud-init would.
func ReadSeed(isoPath string) (*Seed, error) {
	f, err := os.Open(isoPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an ISO 9660 image: %w", isoPath, err)
	}
	root, err := img.RootDir()
	if err != nil {
		return nil, err
	}
	kids, err := root.GetChildren()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, k := range kids {
		b, err := io.ReadAll(k.Reader())
		if err != nil {
			return nil, err
		}
		files[k.Name()] = b
	}
	var md struct {
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname"`
	}
	if err := yaml.Unmarshal(files["meta-data"], &md); err != nil || md.InstanceID == "" {
		return nil, fmt.Errorf("%s: no meta-data with an instance-id; is this a seed ISO?", isoPath)
	}
	var ud struct {
		WriteFiles []struct {
			Path    string `yaml:"path"`
			Content string `yaml:"content"`
		} `yaml:"write_files"`
		Users []struct {
			Name string   `yaml:"name"`
			Keys []string `yaml:"ssh_authorized_keys"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(files["user-data"], &ud); err != nil {
		return nil, fmt.Errorf("%s: user-data: %w", isoPath, err)
	}
	s := &Seed{InstanceID: md.InstanceID, Hostname: md.LocalHostname}
	if len(ud.Users) > 0 {
		s.SSHUser, s.SSHKeys = ud.Users[0].Name, ud.Users[0].Keys
	}
	var nc struct {
		Network struct {
			Ethernets map[string]struct {
				Match map[string]string `yaml:"match"`
			} `yaml:"ethernets"`
		} `yaml:"network"`
	}
	if err := yaml.Unmarshal(files["network-config"], &nc); err == nil {
		for _, e := range nc.Network.Ethernets {
			s.MAC = e.Match["macaddress"]
		}
	}
	for _, wf := range ud.WriteFiles {
		switch wf.Path {
		case path.Join(values.Dir, values.SiteFile):
			if s.Site, err = values.ParseSite(isoPath+": "+wf.Path, []byte(wf.Content)); err != nil {
				return nil, err
			}
		case path.Join(values.Dir, values.ServerPEMFile):
			rest := []byte(wf.Content)
			for {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				if b.Type == "CERTIFICATE" {
					s.CertPEM = append(s.CertPEM, pem.EncodeToMemory(b)...)
				}
			}
		}
	}
	if s.Site == nil {
		return nil, fmt.Errorf("%s: the user-data writes no %s/%s", isoPath, values.Dir, values.SiteFile)
	}
	return s, nil
}
