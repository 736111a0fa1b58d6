# Bash completion for imagefs. Commands and options are read from `imagefs --help` and
# `imagefs COMMAND --help` when completing, so they never go stale; image arguments
# complete to the store's names (REPOSITORY:TAG) and IDs.
# Install: sudo cp scripts/imagefs-completion.bash /usr/share/bash-completion/completions/imagefs
# (or `source` it from ~/.bashrc).

_imagefs_commands() {
  "$1" --help 2>/dev/null | awk '/^Subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'
}

_imagefs_options() {  # _imagefs_options IMAGEFS [COMMAND]
  "$@" --help 2>/dev/null | grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z0-9-]*' | tr -d ' ,' | sort -u
}

_imagefs_images() {  # _imagefs_images IMAGEFS STORE_ARGS...
  "$@" images -a --format json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    j = json.loads(line)
    if j["Repository"] != "<none>":
        print(j["Repository"] + ":" + j["Tag"])
    print(j["ID"][7:19])'
}

_imagefs() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local exe=${COMP_WORDS[0]} command="" i store_args=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --store) store_args=(--store "${COMP_WORDS[i + 1]}"); ((i++)) ;;
      --log-level) ((i++)) ;;
      -*) ;;
      *) command=${COMP_WORDS[i]}; break ;;
    esac
  done
  case $prev in
    --store) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    --log-level) mapfile -t COMPREPLY < <(compgen -W "trace debug info warn error off" -- "$cur"); return ;;
    -o|--output|--registries) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    --format) mapfile -t COMPREPLY < <(compgen -W "table json" -- "$cur"); return ;;
  esac
  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$(_imagefs_options "$exe")" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "$(_imagefs_commands "$exe")" -- "$cur")
    fi
    return
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_imagefs_options "$exe" "$command")" -- "$cur")
    return
  fi
  case $command in
    inspect|tag|untag|rm|export|history)
      mapfile -t COMPREPLY < <(compgen -W "$(_imagefs_images "$exe" "${store_args[@]}")" -- "$cur") ;;
    load) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    mount) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
  esac
}

complete -F _imagefs imagefs
