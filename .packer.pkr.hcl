# Bakes applbuild's appliance images with Packer. The same builder runs
# behind `applbuild image`; docs/packer.md explains the arguments.
#
# Install the plugin once (`make plugin`, which runs
# `packer plugins install --path bin/packer-plugin-applbuild github.com/applbuild/applbuild`),
# then, as root:
#
#   packer build .packer.pkr.hcl                                  # the gateway
#   packer build -var 'roles=["gateway","node"]' .packer.pkr.hcl  # both
#   packer build -var 'roles=["gateway","node"]' -only='applbuild-image.gateway' .packer.pkr.hcl
#
# The plugin is installed from a local path, not a registry, so this file has
# no required_plugins block: Packer finds it among the installed plugins.

variable "roles" {
  type        = list(string)
  default     = ["gateway"]
  description = "Sources to build, by name: gateway, node. Default: the gateway alone."
}

variable "version" {
  type        = string
  default     = ""
  description = "Version in the output names; empty: the date and a hash of the inputs."
}

variable "formats" {
  type        = list(string)
  default     = ["qcow2", "vhdx"]
  description = "Output formats: raw, qcow2, vhdx."
}

variable "output_directory" {
  type    = string
  default = "dist/images"
}

variable "agent_path" {
  type        = string
  default     = "bin/appliance"
  description = "The static appliance agent (make build)."
}

source "applbuild-image" "gateway" {
  role             = "gateway"
  formats          = var.formats
  output_directory = var.output_directory
  version          = var.version
  agent_path       = var.agent_path
}

source "applbuild-image" "node" {
  role             = "node"
  formats          = var.formats
  output_directory = var.output_directory
  version          = var.version
  agent_path       = var.agent_path
}

build {
  sources = [for r in var.roles : "source.applbuild-image.${r}"]
}
