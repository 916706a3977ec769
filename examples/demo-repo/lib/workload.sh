# What the agent was asked to do in a run — its workload — is a pure function of the run id (and, for what changes
# from one attempt to the next, the attempt). So replaying a recorded run against another commit redoes the same work.

# draw KEY N: a number in [0, N), always the same for the same KEY (the CRC of the key; POSIX cksum).
draw() {
  set -- "$(printf '%s' "$1" | cksum)" "$2"
  echo $((${1%% *} % $2))
}
