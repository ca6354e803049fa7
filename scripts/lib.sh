# Shell helpers shared by scripts/test and scripts/load-bench (sourced, never run).

# install_missing PACKAGE...: installs the Debian packages given, as root or through sudo, after
# refreshing the package lists; does nothing when none is given.
install_missing() {
  (($#)) || return 0
  echo "== installing $*"
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}
