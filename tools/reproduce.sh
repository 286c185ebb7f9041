#!/usr/bin/env bash
# Reproduce the paper's Tables 1-3: preprocess, train and evaluate every row the
# project implements, then write RESULTS/tables.md beside the paper's numbers.
#
#   tools/reproduce.sh --recola_dir=/data/RECOLA --avec2017_dir=/data/AVEC2017
#   tools/reproduce.sh --synthetic            # CPU, recola_like synthetic corpus
#
# Options:
#   --recola_dir=DIR      RECOLA, AVEC 2016 layout (Tables 1 and 2)
#   --avec2017_dir=DIR    AV+EC 2017 (Table 3)
#   --synthetic           train Table 1's networks on the recola_like synthetic
#                         corpus once per seed (runs/synthetic_recola_like_<variant>_seed<N>)
#                         and write their mean +- std over the seeds
#   --seeds="0 1 2"       the seeds of --synthetic, space or comma separated (default: 0 1 2)
#   --out=DIR             results folder (default: results)
#   anything else         passed to every `recola_sta.train` call (e.g. --epochs=2)
# Every stage resumes: re-running after an interruption continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

recola_dir="" avec_dir="" synthetic=0 out="results" seeds="0 1 2"
extra=()
for arg in "$@"; do
  case "$arg" in
    --recola_dir=*) recola_dir="${arg#*=}" ;;
    --avec2017_dir=*) avec_dir="${arg#*=}" ;;
    --synthetic) synthetic=1 ;;
    --seeds=*) seeds="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) extra+=("$arg") ;;
  esac
done
if [[ -z "$recola_dir" && -z "$avec_dir" && "$synthetic" == 0 ]]; then
  echo "reproduce.sh: give --recola_dir=DIR and/or --avec2017_dir=DIR, or --synthetic" >&2
  exit 2
fi
for dir in "$recola_dir" "$avec_dir"; do
  if [[ -n "$dir" && ! -d "$dir" ]]; then
    echo "reproduce.sh: corpus folder $dir does not exist" >&2
    exit 2
  fi
done
read -r -a seed_list <<< "${seeds//,/ }"
if [[ "$synthetic" == 1 && ${#seed_list[@]} == 0 ]]; then
  echo "reproduce.sh: --seeds is empty; give e.g. --seeds=\"0 1 2\"" >&2
  exit 2
fi
for seed in "${seed_list[@]+"${seed_list[@]}"}"; do
  if [[ ! "$seed" =~ ^[0-9]+$ ]]; then
    echo "reproduce.sh: --seeds item '$seed' is not a non-negative integer" >&2
    exit 2
  fi
done
python="${PYTHON:-python}"
train() {  # train CONFIG CORPUS_DIR RUN_NAME [FLAG...] (FLAGs after the extra arguments)
  echo "=== $3 ($1) ==="
  local corpus=()
  [[ -n "$2" ]] && corpus=(--corpus_dir="$2")
  "$python" -m recola_sta.train --flagfile="experiments/$1" "${corpus[@]}" \
    --run_dir="$out/runs/$3" "${extra[@]+"${extra[@]}"}" "${@:4}"
}

corpora=() seed_flags=()
if [[ "$synthetic" == 1 ]]; then
  # Table 1's networks on the recola_like corpus, once per seed (config:variant).
  for pair in synthetic_recola_like_2dcnn.cfg:2d_cnn synthetic_recola_like_3dcnn.cfg:3d_cnn \
              synthetic_recola_like_sta.cfg:3d_cnn_sta; do
    for seed in "${seed_list[@]}"; do
      train "${pair%%:*}" "" "synthetic_recola_like_${pair#*:}_seed$seed" --seed="$seed"
    done
  done
  IFS=, ; seed_flags=(--seed_runs=synthetic_recola_like --seeds="${seed_list[*]}") ; unset IFS
fi
if [[ -n "$recola_dir" ]]; then
  train recola_2dcnn.cfg "$recola_dir" recola_2d_cnn
  train recola_3dcnn.cfg "$recola_dir" recola_3d_cnn
  train recola.cfg "$recola_dir" recola_3d_cnn_sta
  train recola_cnn_rnn_1s.cfg "$recola_dir" recola_cnn_rnn_1s
  train recola_cnn_rnn_4s.cfg "$recola_dir" recola_cnn_rnn_4s
  corpora=(recola=recola)
fi
if [[ -n "$avec_dir" ]]; then
  train avec2017_2dcnn.cfg "$avec_dir" avec2017_2d_cnn
  train avec2017.cfg "$avec_dir" avec2017_3d_cnn_sta
  train avec2017_cnn_rnn_4s.cfg "$avec_dir" avec2017_cnn_rnn_4s
  corpora+=(avec2017=avec2017)
fi
IFS=, ; corpora_flag="${corpora[*]}" ; unset IFS
"$python" -m recola_sta.tables --results_dir="$out" --corpora="$corpora_flag" \
  "${seed_flags[@]+"${seed_flags[@]}"}"
