# Sourced by the scripts: `free_gb [DIR]` prints the disk left under DIR
# (default: the current directory) in GB, one decimal. The test command and
# the deployment test print it with each step's time.
free_gb() { df -BM --output=avail "${1:-.}" | awk 'NR == 2 {printf "%.1f", $1 / 1024}'; }
