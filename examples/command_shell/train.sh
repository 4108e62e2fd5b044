#!/bin/sh
# Any program can be a trial: this one is a shell script that "trains" a made-up model whose
# validation loss depends on --lr and --width, and reports each epoch by appending one JSON line
# to $HPSEARCH_METRICS_FILE (by hand, without hpsearch: it prints the lines instead).
set -eu
lr=0.01 width=8 epochs=5
for arg in "$@"; do
  case "$arg" in
    --lr=*) lr="${arg#--lr=}" ;;
    --width=*) width="${arg#--width=}" ;;
    --epochs=*) epochs="${arg#--epochs=}" ;;
  esac
done
epoch=1
while [ "$epoch" -le "$epochs" ]; do
  loss=$(awk -v lr="$lr" -v w="$width" -v e="$epoch" \
    'BEGIN { d = log(lr / 0.01); printf "%.6g", d * d / 4 + 4 / w + 1 / e }')
  line="{\"step\": $epoch, \"val_loss\": $loss}"
  if [ -n "${HPSEARCH_METRICS_FILE:-}" ]; then
    echo "$line" >> "$HPSEARCH_METRICS_FILE"
  else
    echo "$line"
  fi
  epoch=$((epoch + 1))
done
