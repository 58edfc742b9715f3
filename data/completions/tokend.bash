# bash completion for tokend
_tokend_accounts()
{
    local conf=${TOKEND_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/tokend/config}
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -c || ${COMP_WORDS[i]} == --config ]] && conf=${COMP_WORDS[i + 1]}
    done
    [[ -r $conf ]] && sed -n 's/^[[:space:]]*\[account[[:space:]]\+\(.*\)\][[:space:]]*$/\1/p' "$conf"
}

_tokend()
{
    local cur prev cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -c | --config) ((i++)) ;;
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
    -c | --config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "raw xoauth2 oauthbearer" -- "$cur")); return ;;
    --service) COMPREPLY=($(compgen -W "imap smtp" -- "$cur")); return ;;
    --store) COMPREPLY=($(compgen -W "file secret-service command" -- "$cur")); return ;;
    --from) COMPREPLY=($(compgen -W "fetchmail-oauth2 mutt-oauth2 oama pizauth email-oauth2-proxy" -- "$cur")); return ;;
    esac
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "add obtain refresh token status logout check tunnel relay relay-password broker migrate import snippet -c --config -v --verbose -q --quiet -h --help -V --version" -- "$cur"))
        return
    fi
    local opts
    case $cmd in
    obtain) opts="--no-browser --manual --device" ;;
    add) opts="--client-id --client --client-secret-file --provider --tenant --issuer --store --device --no-browser --no-signin --app-only --certificate --key --service-account-file --subject --scopes" ;;
    refresh) opts="--force" ;;
    token) opts="--format --service --scope --set" ;;
    status) opts="--json --check" ;;
    check) opts="--imap --smtp" ;;
    tunnel) opts="--pop3" ;;
    relay) opts="--listen --max-sessions --timeout --tls smtp imap pop3" ;;
    relay-password) opts="" ;;
    broker) COMPREPLY=($(compgen -W "--listen --group --max-sessions" -- "$cur")); return ;;
    migrate) opts="--store" ;;
    import) opts="--from --force --pizauth-account --key --secret $(compgen -f -- "$cur")" ;;
    snippet) opts="fetchmail fetchmail-pop3 fetchmail7 mutt neomutt mutt-tunnel neomutt-tunnel msmtp mbsync mbsync-tunnel offlineimap getmail postfix msmtp-relay mutt-relay neomutt-relay fetchmail-relay fetchmail-relay-pop3 git-send-email" ;;
    esac
    COMPREPLY=($(compgen -W "$opts $(_tokend_accounts)" -- "$cur"))
}
complete -F _tokend tokend
