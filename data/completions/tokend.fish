# fish completion for tokend
function __tokend_accounts
    set -l conf $TOKEND_CONFIG
    test -n "$conf"; or set conf (set -q XDG_CONFIG_HOME; and echo $XDG_CONFIG_HOME; or echo ~/.config)/tokend/config
    test -r $conf; and sed -n 's/^[[:space:]]*\[account[[:space:]]\+\(.*\)\][[:space:]]*$/\1/p' $conf
end

set -l commands add obtain refresh token status logout check relay relay-password migrate import snippet
complete -c tokend -f
complete -c tokend -s c -l config -r -F -d 'configuration file'
complete -c tokend -s v -l verbose -d 'say more'
complete -c tokend -s q -l quiet -d 'only errors'
complete -c tokend -s h -l help -d help
complete -c tokend -s V -l version -d version
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a add -d 'set up an account from an e-mail address'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a obtain -d 'sign in once'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a refresh -d 'refresh tokens that expire soon'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a token -d 'print a valid access token'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a status -d 'show accounts'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a logout -d 'forget the tokens'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a check -d 'log in to the mail servers'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a migrate -d 'move the refresh token to another store'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a import -d 'take the refresh token of another tool'
complete -c tokend -n "__fish_seen_subcommand_from $commands" -a '(__tokend_accounts)'
complete -c tokend -n '__fish_seen_subcommand_from obtain' -l no-browser -l manual -l device
complete -c tokend -n '__fish_seen_subcommand_from add' -l client-id -l client -l client-secret-file -l provider -l tenant -l issuer -l store -l device -l no-browser -l no-signin -l app-only -l certificate -l key -l service-account-file -l subject -l scopes
complete -c tokend -n '__fish_seen_subcommand_from refresh' -l force
complete -c tokend -n '__fish_seen_subcommand_from token' -l format -x -a 'raw xoauth2 oauthbearer'
complete -c tokend -n '__fish_seen_subcommand_from token' -l service -x -a 'imap smtp'
complete -c tokend -n '__fish_seen_subcommand_from token' -l scope -l set -x
complete -c tokend -n '__fish_seen_subcommand_from status' -l json
complete -c tokend -n '__fish_seen_subcommand_from status' -l check
complete -c tokend -n '__fish_seen_subcommand_from check' -l imap -l smtp
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a relay -d 'serve local programs that only know passwords'
complete -c tokend -n '__fish_seen_subcommand_from relay' -l listen -r -l max-sessions -r -l timeout -r -l tls -r -a 'smtp imap pop3'
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a relay-password -d 'print the relay password hash for an account'
complete -c tokend -n '__fish_seen_subcommand_from migrate' -l store -x -a 'file secret-service command'
complete -c tokend -n '__fish_seen_subcommand_from import' -l from -x -a 'fetchmail-oauth2 mutt-oauth2 oama pizauth email-oauth2-proxy'
complete -c tokend -n '__fish_seen_subcommand_from import' -l force
complete -c tokend -n '__fish_seen_subcommand_from import' -l pizauth-account -x -d 'account name in pizauth'
complete -c tokend -n '__fish_seen_subcommand_from import' -l key -r -F -d 'private key to keep in the store'
complete -c tokend -n '__fish_seen_subcommand_from import' -l secret -r -F -d 'client secret to keep in the store'
complete -c tokend -n '__fish_seen_subcommand_from import' -F
complete -c tokend -n "not __fish_seen_subcommand_from $commands" -a snippet -d 'print a configuration for a mail client'
complete -c tokend -n '__fish_seen_subcommand_from snippet' -a 'fetchmail fetchmail-pop3 fetchmail7 mutt neomutt mutt-tunnel neomutt-tunnel msmtp mbsync mbsync-tunnel offlineimap getmail postfix msmtp-relay mutt-relay neomutt-relay fetchmail-relay fetchmail-relay-pop3 git-send-email'
