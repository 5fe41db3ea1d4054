module github.com/applbuild/applbuild

go 1.24.0

require (
	github.com/hashicorp/packer-plugin-sdk v0.6.1 // indirect
	github.com/kdomanski/iso9660 v0.4.0 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
	golang.org/x/crypto v0.37.0 // indirect
	golang.org/x/sys v0.32.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
