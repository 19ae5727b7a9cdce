/** `sbx completion bash|zsh`: a completion script built from the command table (commands and flags). */
import { UsageError } from '../cli-error.ts';
import { write, type Command } from '../command.ts';

export function completion(commands: () => Command[]): Command {
  return {
    name: 'completion',
    usage: 'completion bash|zsh',
    summary: 'Print a shell completion script (bash: source <(sbx completion bash))',
    flags: [],
    async run(ctx, args) {
      const shell = args.positionals[0];
      const cmds = commands();
      const flagsOf = (c: Command) => ['--help', ...c.flags.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])])].join(' ');
      if (shell === 'bash') {
        const cases = cmds.map((c) => `    ${c.name}) flags="${flagsOf(c)}" ;;`).join('\n');
        await write(ctx.stdout, `# sbx bash completion: source <(sbx completion bash)
_sbx() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd="" i flags
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in -H|--host|--api-key) ((i++)) ;; -*) ;; *) cmd=\${COMP_WORDS[i]}; break ;; esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "${cmds.map((c) => c.name).join(' ')} --host --api-key --help --version" -- "$cur"))
    return
  fi
  case $cmd in
${cases}
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _sbx sbx
`);
        return 0;
      }
      if (shell === 'zsh') {
        const cases = cmds.map((c) => `    ${c.name}) _arguments ${c.flags.map((f) => `'--${f.name}[${f.help.replace(/['\[\]:]/g, '')}]'`).join(' ')} '*:file:_files' ;;`).join('\n');
        await write(ctx.stdout, `#compdef sbx
# sbx zsh completion: sbx completion zsh > "\${fpath[1]}/_sbx"  (or: source <(sbx completion zsh))
_sbx() {
  local -a commands
  commands=(${cmds.map((c) => `'${c.name}:${c.summary.replace(/['\[\]:]/g, '')}'`).join(' ')})
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  case $words[2] in
${cases}
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _sbx "$@"; else compdef _sbx sbx; fi
`);
        return 0;
      }
      throw new UsageError(`"sbx completion" requires bash or zsh`, 'completion');
    },
  };
}
