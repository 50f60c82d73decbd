#!/bin/busybox sh
# The guest agent: /init of the microVM's initramfs (busybox only, so the VM needs no base distribution).
# Protocol (docs/executor.md, "MicroVM isolation"): one char device, one line per frame.
#   host -> guest:  RUN <n> | STOP <n> | KILL <n> | POWEROFF
#   guest -> host:  @@fleet READY | @@fleet OUT <n> <1|2> <base64> | @@fleet EXIT <n> <code> [oom|error]
#                   @@fleet LOG <text>
# Steps are described by the host in /job/steps/<n>/ (an initramfs archive appended per job): label (of the
# read-only image disk, empty = this initramfs), run.sh (env, dir) and script.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /run /tmp /scratch /img /steps /data
mount -t devpts devpts /dev/pts
# The agent and its pumps must survive the guest's OOM killer; steps get a normal score again.
echo -1000 >/proc/self/oom_score_adj
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done

CHAN=vport
NET=
DNS=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    fleet.chan=*) CHAN=${arg#fleet.chan=} ;;
    fleet.net=*) NET=${arg#fleet.net=} ;;
    fleet.dns=*) DNS=${arg#fleet.dns=} ;;
  esac
done

# The channel: a virtio-serial port (QEMU; not a tty, no line discipline) or the serial console (Firecracker).
dev=
i=0
while [ -z "$dev" ] && [ $i -lt 600 ]; do
  if [ "$CHAN" = vport ]; then
    for p in /dev/vport*p*; do [ -c "$p" ] && dev=$p; done
  elif [ -c "/dev/$CHAN" ]; then
    dev=/dev/$CHAN
  fi
  [ -n "$dev" ] || usleep 50000
  i=$((i + 1))
done
[ -n "$dev" ] || { echo "fleet agent: no channel device" >/dev/ttyS0; reboot -f; }
[ "$CHAN" = vport ] || stty -F "$dev" raw -echo -onlcr
exec 3<>"$dev" 4<&3
dmesg -n 1

send() { echo "@@fleet $*" >&3; }
fail() { send "LOG $*"; send "EXIT boot 1 error"; sync; reboot -f; }

scratch=$(findfs LABEL=fleet-scratch) || fail "no scratch disk"
mount -t ext4 "$scratch" /scratch || fail "cannot mount the scratch disk"
mkdir -p /scratch/workspace /scratch/up
mount --bind /scratch/workspace /data

if [ -n "$NET" ]; then
  ip link set lo up
  ip link set eth0 up && ip addr add "${NET%,*}" dev eth0 && ip route add default via "${NET#*,}"
fi
[ -n "$DNS" ] && echo "nameserver $DNS" >/etc/resolv.conf

oom_kills() { awk '$1 == "oom_kill" { print $2 }' /proc/vmstat; }

# pump <n> <stream>: read the fifo on stdin in chunks as they come, one frame per chunk.
pump() {
  while :; do
    c=$(dd bs=3072 count=1 2>/dev/null | base64 -w 0)
    [ -n "$c" ] || break
    send "OUT $1 $2 $c"
  done
}

# root <n>: the step's root filesystem: its image read-only, a writable overlay on the scratch disk, /data.
root() {
  d=/job/steps/$1
  label=$(cat "$d/label")
  r=/steps/$1
  mkdir -p "$r"
  if [ -n "$label" ]; then
    lower=/img/$label
    if ! grep -q " $lower " /proc/mounts; then
      mkdir -p "$lower"
      mount -t ext4 -o ro "$(findfs "LABEL=$label")" "$lower" || return 1
    fi
    mkdir -p "/scratch/up/$1/u" "/scratch/up/$1/w"
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=/scratch/up/$1/u,workdir=/scratch/up/$1/w" "$r" || return 1
    mkdir -p "$r/data" "$r/proc" "$r/dev" "$r/sys" "$r/tmp" "$r/etc"
    mount --bind /data "$r/data"
    mount -t proc proc "$r/proc"
    mount --bind /dev "$r/dev"
    mount -t sysfs sys "$r/sys"
    [ -f /etc/resolv.conf ] && cp /etc/resolv.conf "$r/etc/resolv.conf"
  else
    r=/
  fi
  mkdir -p "$r/.fleet-step"
  cp "$d/run.sh" "$d/script" "$r/.fleet-step/"
  echo "$r"
}

run_step() {
  n=$1
  r=$(root "$n") || { send "LOG step $n: cannot prepare its root filesystem"; send "EXIT $n 125 error"; return; }
  mkfifo "/run/$n.out" "/run/$n.err"
  pump "$n" 1 <"/run/$n.out" &
  p1=$!
  pump "$n" 2 <"/run/$n.err" &
  p2=$!
  before=$(oom_kills)
  # setsid: the step is its own process group, so STOP reaches everything it started.
  setsid env -i /bin/sh -c 'echo 0 >/proc/self/oom_score_adj; exec chroot "$0" /bin/sh /.fleet-step/run.sh' \
    "$r" >"/run/$n.out" 2>"/run/$n.err" </dev/null &
  echo $! >"/run/$n.pid"
  wait $!
  code=$?
  wait $p1 $p2
  rm -f "/run/$n.out" "/run/$n.err"
  [ "$(oom_kills)" != "$before" ] && code="$code oom"
  send "EXIT $n $code"
}

stop_step() { [ -f "/run/$2.pid" ] && kill "-$1" "-$(cat "/run/$2.pid")" 2>/dev/null; }

if [ -f /job/startup.sh ]; then
  mkdir -p /job/steps/startup
  : >/job/steps/startup/label
  cp /job/startup.sh /job/steps/startup/script
  printf 'cd /data\nexec /bin/sh /.fleet-step/script\n' >/job/steps/startup/run.sh
  run_step startup
fi
if grep -q fleet.shell /proc/cmdline; then
  # `executor test-vm`: a shell on the serial console for whoever attaches.
  (while :; do setsid sh -c 'cd /data; exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1'; done) &
fi
send READY

# EOF means the host side went away (an executor killed, `executor test-vm` done): wait for it to come back
# (or for the janitor), only POWEROFF ends the VM.
while :; do
  if ! read -r cmd n rest <&4; then
    usleep 200000
    continue
  fi
  case "$cmd" in
    RUN) run_step "$n" & ;;
    STOP) stop_step TERM "$n" ;;
    KILL) stop_step KILL "$n" ;;
    POWEROFF) break ;;
  esac
done
sync
umount /data 2>/dev/null
for m in $(awk '$2 ~ "^/steps/" { print $2 }' /proc/mounts | sort -r); do umount -l "$m"; done
umount /scratch 2>/dev/null || mount -o remount,ro /scratch
sync
reboot -f
