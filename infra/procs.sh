# Sourced by the scripts that start local servers (dev.sh, fuzz.sh): waiting
# for a port, and stopping what the script started, by PID, in order.

# What the script started, by PID: the servers (DynamoDB Local, localstripe)
# and, started after them, their clients (the stream consumer, the API server).
servers=()
clients=()

# port_free PORT: whether nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for_port PORT: up to 60 s for 127.0.0.1:PORT to accept connections.
wait_for_port() {
  for _ in $(seq 1 600); do
    port_free "$1" || return 0
    sleep 0.1
  done
  return 1
}

# stop_all SECONDS PID...: SIGTERM to each, up to SECONDS for all of them to
# exit, then SIGKILL to those left; reaps them.
stop_all() {
  local grace=$1 pid alive
  shift
  (($# > 0)) || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 $((grace * 10))); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# stop_started: stops the clients first, so each finishes against a live
# server, then the servers (stop_all, 4 s each); runs the command given to
# stop_on_exit, and exits with the script's exit status.
stop_started() {
  local rc=$?
  trap - EXIT INT TERM HUP
  stop_all 4 ${clients[@]+"${clients[@]}"}
  stop_all 4 ${servers[@]+"${servers[@]}"}
  eval "$after_stop"
  exit "$rc"
}

# stop_on_exit [COMMAND]: stop_started when the script exits, COMMAND after
# it; Ctrl-C, SIGTERM and SIGHUP exit (130, 143, 129).
stop_on_exit() {
  after_stop=${1:-:}
  trap stop_started EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}
