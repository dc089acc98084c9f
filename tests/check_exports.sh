#!/usr/bin/env bash
# The shared libmutualnet exports the API and nothing else: every defined dynamic symbol is an
# mn_ name declared in a public header (-fvisibility=hidden, MN_API). Prints the count, or the
# offending symbols.
#
#   tests/check_exports.sh LIBMUTUALNET.so SOURCE_ROOT
set -euo pipefail
lib=$1
root=$2
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
# sanitizer runtimes add their own hooks to an instrumented library
exported=$(grep -v -E '^(__asan|__ubsan|__sanitizer|__lsan)' <<<"$exported" || true)
declared=$(grep -ohE '\bmn_[A-Za-z0-9_]+' "$root"/include/mn/*.h | sort -u)
stray=$(comm -23 <(echo "$exported") <(echo "$declared"))
n=$(grep -c . <<<"$exported" || true)
if [[ -n $stray ]]; then
  echo "$lib exports symbols that are not the API of include/mn:" >&2
  echo "$stray" >&2
  exit 1
fi
if ((n < 100)); then
  echo "$lib exports only $n symbols: is MN_API lost?" >&2
  exit 1
fi
echo "$lib: $n symbols exported, each an mn_ name of include/mn"
