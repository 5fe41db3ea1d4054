package builder

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ImportInstructions returns the commands that turn the outputs into a
// Proxmox VE template and a Hyper-V Gen2 VM; docs/import.md explains them.
func ImportInstructions(role string, outs []Output) string {
	var b strings.Builder
	for _, o := range outs {
		file := filepath.Base(o.Path)
		switch o.Format {
		case "qcow2":
			fmt.Fprintf(&b, `Proxmox VE (copy %s and the VM's seed ISO to the node first; 9000 is a free VM id):
  qm create 9000 --name %s-template --memory 2048 --cores 2 --machine q35 --bios ovmf \
     --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=1 --net0 virtio,bridge=vmbr0 \
     --scsihw virtio-scsi-single --serial0 socket --ostype l26
  qm set 9000 --scsi0 local-lvm:0,import-from=/root/%s
  qm set 9000 --boot order=scsi0
  qm template 9000
  # per VM: clone, attach its seed, boot
  qm clone 9000 101 --name gw1 --full
  qm set 101 --ide2 local:iso/gw1.iso,media=cdrom
  qm start 101
`, file, role, file)
		case "vhdx":
			fmt.Fprintf(&b, `Hyper-V (PowerShell as administrator; copy %s and the seed ISO to the host):
  New-VM -Name gw1 -Generation 2 -MemoryStartupBytes 2GB -VHDPath C:\VMs\gw1.vhdx -SwitchName "LAN"
  Set-VMFirmware -VMName gw1 -SecureBootTemplate MicrosoftUEFICertificateAuthority
  Add-VMDvdDrive -VMName gw1 -Path C:\VMs\seeds\gw1.iso
  Set-VMProcessor -VMName gw1 -Count 2
  Start-VM -Name gw1
  # copy %s to C:\VMs\gw1.vhdx for each VM first; copy with a tool that keeps
  # it sparse, or it grows to its full virtual size (e.g. Copy-Item on NTFS
  # keeps it dynamic; some network shares do not)
`, file, file)
		}
	}
	return b.String()
}
