# Sourced by the command-line test scripts: a scratch folder $work removed on exit, failure
# counting, and the check that bad input gets one line on stderr and a non-zero exit.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_error NAME PATTERN CMD...: non-zero exit, exactly one stderr line matching PATTERN.
expect_error() {
  local name=$1 pattern=$2; shift 2
  if "$@" >"$work/out" 2>"$work/err"; then fail "$name: exit 0"; return; fi
  [ "$(wc -l <"$work/err")" -eq 1 ] || fail "$name: stderr is not one line: $(cat "$work/err")"
  grep -q -- "$pattern" "$work/err" || fail "$name: stderr lacks '$pattern': $(cat "$work/err")"
}

# expect_write_error NAME CMD...: with stdout on /dev/full (every write fails), a non-zero exit and
# one "write to stdout failed" line on stderr. Skipped where the system has no /dev/full.
expect_write_error() {
  local name=$1; shift
  [ -w /dev/full ] || return 0
  if "$@" >/dev/full 2>"$work/err"; then fail "$name: exit 0 with stdout on /dev/full"; return; fi
  [ "$(grep -c "write to stdout failed" "$work/err")" -eq 1 ] \
    || fail "$name: stderr lacks one 'write to stdout failed' line: $(cat "$work/err")"
}
