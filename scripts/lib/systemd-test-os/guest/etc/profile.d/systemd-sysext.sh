# Kairos' hierarchy list (kairos-init 99_sysext.yaml), so `sudo -i; systemd-sysext status` shows it.
export SYSTEMD_SYSEXT_HIERARCHIES=@SYSEXT_HIERARCHIES@
