#!/usr/bin/env bash
# The imagefs CLI end to end: the contract's commands, exit codes and messages, and
# loading real umoci/skopeo-made archives in all three formats.
source "$(dirname "$0")/lib.sh"

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
fx=$SCRATCH/fx

# Exit codes: usage errors are 2, failures 1.
run "$IMAGEFS" --version;         check_eq "--version exits 0" 0 "$rc"
if rev=$(git -C "$TESTS_DIR" rev-parse --short=12 HEAD 2>/dev/null); then
  check_contains "--version names the git revision" "(git $rev" "$out"
fi
run "$IMAGEFS" --help;            check_eq "--help exits 0" 0 "$rc"
check_contains "--help lists load" "load" "$out"
run "$IMAGEFS";                   check_eq "no command is a usage error" 2 "$rc"
run "$IMAGEFS" frobnicate;        check_eq "unknown command is a usage error" 2 "$rc"
run "$IMAGEFS" images --format x; check_eq "bad option value is a usage error" 2 "$rc"
run "$IMAGEFS" tag onlyone;       check_eq "missing argument is a usage error" 2 "$rc"
run "$IMAGEFS" images;            check_eq "images where no store is" 1 "$rc"
check_eq "says there is no store" "imagefs: no store at $IMAGEFS_STORE" "$out"
mkdir -m 700 "$IMAGEFS_STORE"
run "$IMAGEFS" images;            check_eq "images on an empty directory" 1 "$rc"

# The three formats of one image give one image ID and share every layer.
run "$IMAGEFS" load "$fx/docker.tar"; check_eq "load docker-archive" 0 "$rc"
check_eq "docker-archive output" "Loaded image: example/img:1" "$out"
run "$IMAGEFS" images -a; check_eq "images on a store" 0 "$rc"
id=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Config"].split(".")[0])' <(tar -xOf "$fx/docker.tar" manifest.json))
check_eq "image ID is sha256 of the config" "sha256:$want" "$id"
layers_after_docker=$("$IMAGEFS" layers | tail -n +2 | wc -l)
check_eq "two layers" 2 "$layers_after_docker"

run "$IMAGEFS" load "$fx/oci.tar"; check_eq "load oci-archive" 0 "$rc"
check_eq "oci-archive output" "Loaded image: example/img:2" "$out"
check_eq "same ID through OCI" "$id" "$("$IMAGEFS" inspect example/img:2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
run "$IMAGEFS" load "$fx/oci"; check_eq "load OCI layout directory" 0 "$rc"
check_eq "OCI ref.name \"img\" becomes a tag" "Loaded image: img:latest" "$out"
check_eq "layers shared across formats" 2 "$("$IMAGEFS" layers | tail -n +2 | wc -l)"

# zstd and gzip layers of the same image (written by skopeo) give the same image.
skopeo copy -q --dest-compress-format zstd "oci:$fx/oci:img" "oci:$SCRATCH/zstd:img"
grep -q 'tar+zstd' "$SCRATCH"/zstd/blobs/sha256/* && echo "ok: the layout has zstd layers" || fail "skopeo wrote no zstd layer"
run "$IMAGEFS" load "$SCRATCH/zstd"; check_eq "load OCI layout with zstd layers" 0 "$rc"
check_eq "zstd layers are the same layers" 2 "$("$IMAGEFS" layers | tail -n +2 | wc -l)"

top_v1=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["example/legacy"]["v1"])' < <(tar -xOf "$fx/legacy.tar" repositories))
run "$IMAGEFS" load "$fx/legacy.tar"; check_eq "load legacy" 0 "$rc"
check_eq "legacy output" "Loaded image: example/legacy:v1" "$(grep 'Loaded image:' <<<"$out")"
check_eq "v1 ID preserved" "sha256:$top_v1" "$("$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
check_eq "legacy shares the ChainIDs" 2 "$("$IMAGEFS" layers | tail -n +2 | wc -l)"
legacy_chain=$("$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][-1])')
modern_chain=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][-1])')
check_eq "same top ChainID" "$modern_chain" "$legacy_chain"
check_eq "the top layer is used by 2 images (legacy top, modern)" "2" "$("$IMAGEFS" layers --no-trunc | grep "${modern_chain#sha256:}" | awk '{print $NF}' | head -1)"

# Listing: heads only by default, intermediates with -a; JSON lines.
check_eq "images rows (img:1, img:2, img:latest, legacy:v1)" 4 "$("$IMAGEFS" images | tail -n +2 | wc -l)"
check_eq "images -a adds the legacy parent" 5 "$("$IMAGEFS" images -a | tail -n +2 | wc -l)"
check_contains "untagged intermediate" "<none>" "$("$IMAGEFS" images -a)"
check_eq "json lines parse" 4 "$("$IMAGEFS" images --format json | python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l)["ID"].startswith("sha256:")))')"

# Prefixes: unique works, unknown and ambiguous are clear errors.
short=${id#sha256:}; short=${short:0:8}
run "$IMAGEFS" inspect "$short"; check_eq "inspect by prefix" 0 "$rc"
run "$IMAGEFS" inspect 0000000000ffff; check_eq "unknown prefix fails" 1 "$rc"
check_contains "unknown prefix message" "no such image: 0000000000ffff" "$out"
run "$IMAGEFS" inspect nosuch/name:tag; check_contains "unknown name message" "no such image: nosuch/name:tag" "$out"

# Tags and removal, Docker's way.
run "$IMAGEFS" tag "$short" registry.example:5000/team/app; check_eq "tag by prefix" 0 "$rc"
check_contains "tag listed" "registry.example:5000/team/app   latest" "$("$IMAGEFS" images)"
run "$IMAGEFS" tag "$short" 'Bad:Name'; check_eq "invalid tag fails" 1 "$rc"
check_contains "invalid tag message" "invalid reference format" "$out"
run "$IMAGEFS" untag registry.example:5000/team/app; check_eq "untag" "Untagged: registry.example:5000/team/app:latest" "$out"
run "$IMAGEFS" untag registry.example:5000/team/app; check_eq "untag twice fails" 1 "$rc"
run "$IMAGEFS" rm example/img:2; check_eq "rm of one of several tags untags" "Untagged: example/img:2" "$out"
legacy_parent=$("$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Parent"])')
run "$IMAGEFS" rm "$legacy_parent"; check_eq "rm of a parent image refused" 1 "$rc"
check_contains "refusal names the child" "has it as parent" "$out"
run "$IMAGEFS" rm "$modern_chain"; check_eq "rm of a used layer refused" 1 "$rc"
check_contains "layer refusal reason" "uses it" "$out"
run "$IMAGEFS" rm example/legacy:v1; check_eq "rm legacy top" 0 "$rc"
check_contains "reports the deletion" "Deleted: sha256:$top_v1" "$out"
run "$IMAGEFS" rm "$legacy_parent"; check_eq "then its parent" 0 "$rc"
check_eq "layers still used by the modern image stay" 2 "$("$IMAGEFS" layers | tail -n +2 | wc -l)"
run "$IMAGEFS" untag img; check_eq "untag short name" "Untagged: img:latest" "$out"
run "$IMAGEFS" rm example/img:1; check_eq "rm last tag deletes" 0 "$rc"
check_contains "layers deleted too" "Deleted: $modern_chain" "$out"
check_eq "store empty again" 0 "$("$IMAGEFS" layers | tail -n +2 | wc -l)"

# A broken archive: exit 1, the file named, nothing registered; then a good load works.
head -c 100000 "$fx/docker.tar" > "$SCRATCH/cut.tar"
run "$IMAGEFS" load "$SCRATCH/cut.tar"; check_eq "truncated load fails" 1 "$rc"
check_contains "message names the file" "cut.tar" "$out"
check_contains "message says truncated" "truncated" "$out"
check_eq "nothing registered" 1 "$("$IMAGEFS" images -a | wc -l)"
run "$IMAGEFS" load - < "$fx/docker.tar"; check_eq "load from stdin" "Loaded image: example/img:1" "$out"

# The store from one process is seen by the next; --store and the environment agree.
run "$IMAGEFS" --store "$IMAGEFS_STORE" images; check_contains "--store" "example/img" "$out"
run env -u IMAGEFS_STORE XDG_DATA_HOME="$SCRATCH/xdg" "$IMAGEFS" images
check_eq "the XDG default store is separate (and not there yet)" "imagefs: no store at $SCRATCH/xdg/imagefs" "$out"
test -e "$SCRATCH/xdg" && fail "images made the XDG store" || echo "ok: images made no XDG store"
run env -u IMAGEFS_STORE XDG_DATA_HOME="$SCRATCH/xdg" "$IMAGEFS" load -q "$fx/docker.tar"
check_eq "load makes the XDG default store" 0 "$rc"
check_eq "a private store, its parents too" "700 700" "$(stat -c %a "$SCRATCH/xdg/imagefs" "$SCRATCH/xdg" | xargs)"

# history: the config's steps, newest first, sized by their layers; a legacy image's chain.
run "$IMAGEFS" history example/img:1; check_eq "history" 0 "$rc"
check_eq "history: a row per step, the top one the image" \
  "IMAGE CREATED CREATED BY SIZE COMMENT|${id:7:12}|<missing>" \
  "$(awk 'NR == 1 { $1 = $1; print; next } { print $1 }' <<<"$out" | paste -sd '|')"
check_contains "history: umoci's steps" "umoci repack" "$out"
run "$IMAGEFS" history --format json example/img:1
check_eq "history --format json: sizes are the layers' content" "200016 52" \
  "$(python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["SizeBytes"]) for l in sys.stdin))' <<<"$out")"
run "$IMAGEFS" history nosuch:1; check_eq "history of an unknown name fails" 1 "$rc"

# Bash completion: commands and options from --help, image arguments from the store.
complete() {  # complete WORD... : what TAB offers for the last word
  bash -c 'source "$1/../../scripts/imagefs-completion.bash"; shift
           COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _imagefs; echo "${COMPREPLY[*]}"' _ "$TESTS_DIR" "$@"
}
check_eq "completion: commands" "history" "$(complete "$IMAGEFS" hist)"
check_eq "completion: a command's options" "--repair" "$(complete "$IMAGEFS" check --rep)"
check_contains "completion: image names" "example/img:1" "$(complete "$IMAGEFS" history example/im)"

# diff: added, removed and changed paths between two images' trees, and why each changed.
da=$SCRATCH/diff-a db=$SCRATCH/diff-b
mkdir -p "$da/etc" "$da/dir/sub" "$db/etc"
for d in "$da" "$db"; do echo same > "$d/etc/same"; echo m > "$d/etc/mode"; done
echo aaaa > "$da/etc/content"; echo bbbb > "$db/etc/content"  # same size, other bytes
echo gone > "$da/etc/gone"; echo new > "$db/etc/new"
chmod 600 "$db/etc/mode"; ln -s one "$da/etc/link"; ln -s two "$db/etc/link"
echo x > "$da/dir/sub/f"; echo file > "$db/dir"
find "$da" "$db" -exec touch -h -d '2020-01-01 00:00:00' {} +
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$da" "$SCRATCH/diff-a.tar" diff/a:1
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$db" "$SCRATCH/diff-b.tar" diff/b:1
"$IMAGEFS" load -q "$SCRATCH/diff-a.tar" "$SCRATCH/diff-b.tar" >/dev/null
run "$IMAGEFS" diff diff/a:1 diff/b:1; check_eq "diff exits 0" 0 "$rc"
check_eq "diff: every change, in path order, with what changed" \
  "C /dir (type)|D /dir/sub|D /dir/sub/f|C /etc/content (content)|D /etc/gone|C /etc/link (target)|C /etc/mode (mode)|A /etc/new" \
  "$(paste -sd '|' <<<"$out")"
run "$IMAGEFS" diff --format json diff/a:1 diff/b:1
check_contains "diff --format json" '{"Changes":["content"],"Kind":"C","Path":"/etc/content"}' "$out"
run "$IMAGEFS" diff diff/a:1 diff/a:1; check_eq "diff of an image with itself is empty" "" "$out"
run "$IMAGEFS" diff diff/a:1 nosuch:1; check_eq "diff with an unknown image fails" 1 "$rc"
# save: one docker-save tarball of several images; loading it gives them back, same IDs.
run "$IMAGEFS" save example/img:1 diff/a:1 "$id" -o "$SCRATCH/save.tar"; check_eq "save of two images" 0 "$rc"
check_eq "an image named twice is saved once" 2 \
  "$(tar -xOf "$SCRATCH/save.tar" manifest.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
run env IMAGEFS_STORE="$SCRATCH/store-save" "$IMAGEFS" load "$SCRATCH/save.tar"
check_eq "loads back both" "Loaded image: example/img:1|Loaded image: diff/a:1" \
  "$(grep 'Loaded image' <<<"$out" | paste -sd '|')"
check_eq "with their IDs" "$("$IMAGEFS" inspect example/img:1 diff/a:1 | python3 -c 'import json,sys; print(" ".join(i["Id"] for i in json.load(sys.stdin)))')" \
  "$(IMAGEFS_STORE="$SCRATCH/store-save" "$IMAGEFS" inspect example/img:1 diff/a:1 | python3 -c 'import json,sys; print(" ".join(i["Id"] for i in json.load(sys.stdin)))')"
check_eq "save to a pipe writes the same bytes" "$("$IMAGEFS" save example/img:1 -o - | sha256sum)" \
  "$("$IMAGEFS" save example/img:1 -o "$SCRATCH/one.tar" && sha256sum < "$SCRATCH/one.tar")"
"$IMAGEFS" load -q "$fx/legacy.tar" >/dev/null
run "$IMAGEFS" save example/legacy:v1 example/img:1 -o "$SCRATCH/mixed.tar"
check_eq "a legacy image with a modern one is refused" 1 "$rc"
check_contains "saying why" "docker load would skip it" "$out"
check_eq "leaving no file" "no" "$([ -e "$SCRATCH/mixed.tar" ] && echo yes || echo no)"
run "$IMAGEFS" save example/legacy:v1 -o "$SCRATCH/legacy-again.tar"; check_eq "a legacy image alone saves" 0 "$rc"
run env IMAGEFS_STORE="$SCRATCH/store-legacy" "$IMAGEFS" load "$SCRATCH/legacy-again.tar"
check_eq "and loads with its v1 ID" "sha256:$top_v1" "$(IMAGEFS_STORE="$SCRATCH/store-legacy" "$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
run "$IMAGEFS" save nosuch:1 -o "$SCRATCH/x.tar"; check_eq "save of an unknown name fails" 1 "$rc"
finish
