#!/bin/busybox sh
# shellcheck shell=dash
# /init of the kTLS VM's initramfs (busybox). Loads the modules, puts a
# writable tmpfs overlay on the root it is given (9p tag "hostroot",
# read-only: the host's / or a profile's own root filesystem), and runs
# /ktls-job/cmd.sh (9p tag "job", read-write) chrooted in it.
# job/mounts lists further read-only 9p shares, one "TAG PATH" a line,
# mounted at PATH in the overlay (the repository, for a root of its own).
# stdout, stderr and the exit status go back through the job share:
#   job/started  job/stdout  job/stderr  job/rc
# Then the VM powers off. Anything that goes wrong before the command runs
# is written to the console and leaves no job/started.
export PATH=/bin:/sbin

fail() {
	echo "ktls-init: $*"
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
kver=$(cat /proc/sys/kernel/osrelease)
while read -r m; do
	insmod "/lib/modules/$kver/$m" || fail "insmod $m failed"
done </modules.order
depmod  # so the kernel's on-demand /sbin/modprobe finds what is here
echo /sbin/modprobe >/proc/sys/kernel/modprobe

opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /host /job /rw /newroot
mount -t 9p -o "$opts,ro,cache=loose" hostroot /host || fail "mount hostroot"
mount -t 9p -o "$opts,cache=none" job /job || fail "mount job"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work \
	overlay /newroot || fail "mount overlay"

r=/newroot
# /tmp stays the host's, seen through the overlay: paths there work in the VM
mkdir -p $r/proc $r/sys $r/dev $r/run $r/ktls-job
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs shm $r/dev/shm
mount -t tmpfs -o mode=0755 run $r/run
mount --bind /job $r/ktls-job
if test -f /job/mounts; then
	while read -r tag path; do
		mkdir -p "$r$path"
		mount -t 9p -o "$opts,ro,cache=loose" "$tag" "$r$path" || fail "mount $tag"
	done </job/mounts
fi
ip link set lo up

echo started >/job/started
chroot $r /bin/sh /ktls-job/cmd.sh >/job/stdout 2>/job/stderr </dev/null
echo $? >/job/rc
sync
poweroff -f
