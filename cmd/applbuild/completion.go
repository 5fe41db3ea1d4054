package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

func completionCommand() *command {
	return &command{
		name:    "completion",
		summary: "Print a shell completion script (bash or zsh)",
		usage:   "bash|zsh",
		long: `Load it into the current shell:
  source <(applbuild completion bash)
  source <(applbuild completion zsh)
or install it for every shell:
  applbuild completion bash > /etc/bash_completion.d/applbuild`,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usageError{"give the shell: bash or zsh"}
			}
			switch args[0] {
			case "bash":
				writeBashCompletion(e.stdout)
			case "zsh":
				fmt.Fprint(e.stdout, "#compdef applbuild\nautoload -U +X bashcompinit && bashcompinit\n")
				writeBashCompletion(e.stdout)
			default:
				return usageError{fmt.Sprintf("%q is not a supported shell; use bash or zsh", args[0])}
			}
			return nil
		},
	}
}

// writeBashCompletion emits a completion function generated from the command
// table, so new commands and flags complete without editing a script. Site
// names complete from the *.yaml files in --sites-dir.
func writeBashCompletion(w io.Writer) {
	var cases strings.Builder
	for _, c := range commands() {
		var flags []string
		newFlagSet(c).VisitAll(func(f *pflag.Flag) { flags = append(flags, "--"+f.Name) })
		words := strings.Join(flags, " ")
		if c.name == "completion" {
			words = "bash zsh"
		}
		fmt.Fprintf(&cases, "    %s) opts=%q ;;\n", c.name, words)
	}
	fmt.Fprintf(w, `# bash completion for applbuild
_applbuild() {
  local cur prev cmd opts i dir
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W %q -- "$cur") )
    return
  fi
  cmd="${COMP_WORDS[1]}"
  case "$prev" in
    --site)
      dir=sites
      for ((i=1; i<COMP_CWORD; i++)); do
        [ "${COMP_WORDS[i]}" = "--sites-dir" ] && dir="${COMP_WORDS[i+1]}"
      done
      COMPREPLY=( $(compgen -W "$(ls "$dir" 2>/dev/null | sed -n 's/\.yaml$//p')" -- "$cur") )
      return ;;
    --sites-dir|--out)
      COMPREPLY=( $(compgen -d -- "$cur") )
      return ;;
    --log-level)
      COMPREPLY=( $(compgen -W "debug info warn error" -- "$cur") )
      return ;;
    --log-format)
      COMPREPLY=( $(compgen -W "text json" -- "$cur") )
      return ;;
  esac
  case "$cmd" in
%s    *) opts="" ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -F _applbuild applbuild
`, strings.Join(names(), " "), cases.String())
}
