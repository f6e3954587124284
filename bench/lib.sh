# Helpers shared by the bench scripts (sourced, not run).

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Field $2 of the JSON line $1 (what upload-bench prints).
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
# The median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# "median (min-max)" of the numbers given as arguments.
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%s (%s-%s)", v[int((NR+1)/2)], v[1], v[NR]}'; }
# Peak resident memory of process $PID, in MiB.
rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
# CPU (user + system) process $PID has used, in ms per unit of work ($1 units).
cpu_ms() { awk -v n="$1" -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) * 1000 / hz / n}' "/proc/$PID/stat"; }
