#!/usr/bin/env bash
# Turns the LFW sex labels of Afifi & Abdelhamed (2017) — female_names.txt and male_names.txt,
# one image file name per line — into the LABELS.csv of `facevault eval cohorts`:
#   identity,sex
#   Aaron_Eckhart,male
# One row per identity (LFW folder name): the label its images carry. An identity whose images
# carry both labels is written with an empty label (unlabelled) and named on stderr: this
# script does not decide who someone is, and neither does facevault. The labels are the
# evaluator's input; they are never committed to this repository (docs/quality.md).
#
# usage: scripts/lfw-cohorts.sh COHORTS_DIR > sex.csv
#   e.g. scripts/lfw-cohorts.sh ../shared/data/lfw/cohorts > /tmp/lfw-sex.csv
set -euo pipefail
dir=${1:?usage: $0 DIR_WITH_female_names.txt_AND_male_names.txt}
for f in female_names.txt male_names.txt; do
  [[ -r "$dir/$f" ]] || { echo "lfw-cohorts: cannot read $dir/$f" >&2; exit 1; }
done
{
  sed 's/\r$//; s/^/female\t/' "$dir/female_names.txt"
  sed 's/\r$//; s/^/male\t/' "$dir/male_names.txt"
} | awk -F'\t' '
  $2 == "" { next }
  {
    id = $2; sub(/_[0-9]+\.[A-Za-z]+$/, "", id)   # Name_0001.jpg -> Name
    if (!(id in label)) label[id] = $1
    else if (label[id] != $1) conflict[id] = 1
  }
  END {
    print "# identity-level sex labels from Afifi & Abdelhamed (2017), converted by scripts/lfw-cohorts.sh"
    print "identity,sex"
    for (id in label) {
      if (id in conflict) { print id ","; printf "lfw-cohorts: %s has images labelled female and male: left unlabelled\n", id > "/dev/stderr" }
      else print id "," label[id]
    }
  }' | { read -r c; read -r h; echo "$c"; echo "$h"; LC_ALL=C sort; }
