#!/usr/bin/env bash
# The dependency rule for includes (docs/ARCHITECTURE.md): every file of a layer may include the
# headers of its own layer and of the layers below it, never one above. Run by the build (a
# failure fails `meson compile`); prints each offending line.
#
#   tools/check_layers.sh SOURCE_ROOT [STAMP]
set -euo pipefail
root=$1
stamp=${2:-}
[[ -n $stamp && $stamp != /* ]] && stamp=$PWD/$stamp

# the layer of each public header (include/mn/<name>.h)
declare -A header_layer
put() { local layer=$1; shift; for h in "$@"; do header_layer[$h]=$layer; done; }
put core arena checkpoint error fileio image json optim ops param progress rng safetensors tape targets tensor trace comm
put backbone backbone slim
put heads seg det boxes
put datasets dataset polygon synth
put viz viz
put model config model seg_model det_model cls_model calibrate query classes
put eval coco_eval miou seg_eval det_eval cls_eval
put train train
put export export
put dist dist
put api infer

# what each layer may include
declare -A allowed=(
  [core]="core"
  [backbone]="core backbone"
  [heads]="core backbone heads"
  [datasets]="core datasets"
  [viz]="core viz"
  [model]="core backbone heads datasets model"
  [eval]="core backbone heads datasets model eval"
  [train]="core backbone heads datasets model eval train"
  [export]="core backbone heads datasets model export"
  [dist]="core dist"
  [api]="core backbone heads datasets model eval api"
)

bad=0
check() { # file layer
  local file=$1 layer=$2 line inc target
  while IFS= read -r line; do
    inc=${line#*\"}
    inc=${inc%%\"*}
    case $inc in
      mn/*.h) target=${header_layer[$(basename "$inc" .h)]:-unknown} ;;
      */*) target=${inc%%/*} ;;                       # a folder's own internal header
      *.h) [[ $file == include/mn/* ]] && target=${header_layer[${inc%.h}]:-unknown} || continue ;;
      *) continue ;;
    esac
    if [[ $target == unknown ]]; then
      echo "$file: $inc: a header of no known layer (add it to tools/check_layers.sh)"
      bad=1
    elif [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "$file ($layer): includes $inc ($target), a layer above or beside it"
      bad=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$file" || true)
}

cd "$root"
for layer in "${!allowed[@]}"; do
  for f in $(find "$layer" -name '*.[ch]' | sort); do check "$f" "$layer"; done
done
for f in include/mn/*.h; do
  layer=${header_layer[$(basename "$f" .h)]:-}
  if [[ -z $layer ]]; then
    echo "$f: a public header of no known layer (add it to tools/check_layers.sh)"
    bad=1
  else
    check "$f" "$layer"
  fi
done
if ((bad)); then
  echo "layer rule broken: see docs/ARCHITECTURE.md" >&2
  exit 1
fi
[[ -n $stamp ]] && echo ok > "$stamp"
exit 0
