#!/usr/bin/env bash
# Kiosk set-up for Raspberry Pi OS / Debian bookworm: the signage user (in video and render, for
# the screen and the GPU), apt packages (OpenGL ES included), the venv in /opt/signage,
# /etc/signage/player.toml, the systemd units, on a Pi the GPU's KMS overlay, no console blanking
# or cursor, a capped journal. Safe to rerun. See docs/install.md.
#
#   sudo systemd/install.sh --server http://192.168.1.10:8080 [--name lobby]
#   sudo systemd/install.sh --server-replicas 2 --server http://127.0.0.1:8080
#   sudo systemd/install.sh --uninstall [--purge]
#   systemd/install.sh --root /tmp/stage --server http://x   (writes files, prints commands)
set -euo pipefail

PROG=$(basename "$0")
HERE=$(cd "$(dirname "$0")" && pwd)

ROOT=""            # --root: write files under this directory, run no command
DRY_RUN=0          # --dry-run: write nothing, run nothing, say what would happen
STAGED=0           # 1 under --root or --dry-run
SOURCE="$(dirname "$HERE")"
SERVER_URL=""
DEVICE_NAME=""
WITH_SERVER=0
SERVER_REPLICAS=""  # --server-replicas N: signage-server@PORT.service on ports 8080 and up
ACTION=install
PURGE=0
USE_APT=1
START=1
REBOOT_COMMAND=1
REBOOT_NEEDED=0
JOURNAL_MAX=64M

PREFIX=/opt/signage
VENV=$PREFIX/venv
SRC_COPY=$PREFIX/src
CONFIG_DIR=/etc/signage
UNIT_DIR=/etc/systemd/system
JOURNALD_DROPIN=/etc/systemd/journald.conf.d/signage.conf
SYSUSERS_FILE=/etc/sysusers.d/signage.conf
POLKIT_RULE=/etc/polkit-1/rules.d/50-signage-reboot.rules
CMDLINE_RECORD=$PREFIX/cmdline-changes
BOOTCONFIG_RECORD=$PREFIX/config-txt-changes
# libegl1, libgles2, libgl1-mesa-dri: OpenGL ES through Mesa (V3D on a Pi 4/5), the GL path.
APT_PACKAGES=(libmpv2 fonts-dejavu-core python3-venv ca-certificates polkitd util-linux
    libegl1 libgles2 libgl1-mesa-dri v4l-utils)
KMS_OVERLAY=dtoverlay=vc4-kms-v3d
KMS_MARK="# signage: the GPU's KMS driver (KMSDRM display and OpenGL ES for the player)"
CMDLINE_SETTINGS=(consoleblank=0 vt.global_cursor_default=0)
UNITS=(signage-player.service signage-server.service)
REPLICA_TEMPLATE=signage-server@.service
REPLICA_FIRST_PORT=8080
MAX_REPLICAS=16
REPLICAS_RECORD=$PREFIX/server-replicas  # the enabled instances, one a line

usage() {
    cat <<USAGE
usage: $PROG [--server URL] [--name NAME] [--with-server | --server-replicas N] [OPTIONS]
       $PROG --uninstall [--purge] [OPTIONS]

Installs the signage player as a kiosk service (Raspberry Pi OS / Debian bookworm). Run as root.

  --server URL       the signage server, e.g. http://192.168.1.10:8080 (asked when interactive)
  --name NAME        the device name shown on the server (default: the server asks when pairing)
  --with-server      also run the bundled reference server on this machine
  --server-replicas N  instead, N server processes, one a port from $REPLICA_FIRST_PORT
                     (signage-server@PORT); with N > 1, /etc/signage/server.toml must set
                     server.redis_url (docs/server.md)
  --source DIR       project checkout to install (default: $SOURCE)
  --journal-max SIZE cap of the persistent journal (default: $JOURNAL_MAX)
  --no-apt           do not install apt packages
  --no-start         enable the units but do not (re)start them now
  --no-reboot-command  do not let the server's "reboot" command reboot this machine
  --uninstall        stop and remove the service, keeping configuration and state
  --purge            with --uninstall: also remove configuration, state and the signage user
  --root DIR         install into a staging tree: write files under DIR, print the commands
  --dry-run          write nothing, print what would be written and run
  -h, --help         this help
USAGE
}

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
# die MESSAGE [EXIT_CODE]: the code is the process's status, never part of the message.
die() {
    printf '%s: error: %s\n' "$PROG" "$1" >&2
    exit "${2:-1}"
}

# Run a command that changes the system; staged runs only print it.
run() {
    if [ "$STAGED" -eq 1 ]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    "$@"
}

# write_file PATH MODE: content on stdin; rewritten only when it differs (so reruns are no-ops).
# MODE "-" leaves the mode alone (the Pi's boot partition is FAT: chmod fails there).
write_file() {
    local path=$1 mode=$2 target="$ROOT$1" content
    content=$(cat)
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would write: %s (mode %s)\n' "$path" "$mode"
        return 0
    fi
    if [ -f "$target" ] && [ "$(cat "$target")" = "$content" ]; then
        [ "$mode" = - ] || chmod "$mode" "$target"
        return 0
    fi
    mkdir -p "$(dirname "$target")"
    printf '%s\n' "$content" >"$target.tmp.$$"
    [ "$mode" = - ] || chmod "$mode" "$target.tmp.$$"
    mv -f "$target.tmp.$$" "$target"
    printf 'wrote: %s\n' "$path"
}

remove_path() {
    local target="$ROOT$1"
    [ -e "$target" ] || [ -L "$target" ] || return 0
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would remove: %s\n' "$1"
        return 0
    fi
    rm -rf -- "$target"
    printf 'removed: %s\n' "$1"
}

valid_url() {
    [[ $1 =~ ^https?://[^[:space:]/\"\\]+(/[^[:space:]\"\\]*)?$ ]]
}

valid_name() {
    [ "${#1}" -ge 1 ] && [ "${#1}" -le 64 ] && [[ ! $1 =~ [\"\\[:cntrl:]] ]]
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --server) [ $# -ge 2 ] || die "--server needs a URL" 2; SERVER_URL=$2; shift ;;
            --name) [ $# -ge 2 ] || die "--name needs a value" 2; DEVICE_NAME=$2; shift ;;
            --with-server) WITH_SERVER=1 ;;
            --server-replicas)
                [ $# -ge 2 ] || die "--server-replicas needs a number" 2
                SERVER_REPLICAS=$2
                shift
                ;;
            --source) [ $# -ge 2 ] || die "--source needs a directory" 2; SOURCE=$2; shift ;;
            --journal-max) [ $# -ge 2 ] || die "--journal-max needs a size" 2; JOURNAL_MAX=$2; shift ;;
            --no-apt) USE_APT=0 ;;
            --no-start) START=0 ;;
            --no-reboot-command) REBOOT_COMMAND=0 ;;
            --uninstall) ACTION=uninstall ;;
            --purge) PURGE=1 ;;
            --root) [ $# -ge 2 ] || die "--root needs a directory" 2; ROOT=$2; shift ;;
            --dry-run) DRY_RUN=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" 2 ;;
        esac
        shift
    done
    if [ -n "$ROOT" ]; then
        [ -d "$ROOT" ] || die "--root $ROOT: no such directory" 2
        ROOT=$(cd "$ROOT" && pwd)
        [ "$ROOT" != / ] || ROOT=""
    fi
    if [ -n "$ROOT" ] || [ "$DRY_RUN" -eq 1 ]; then STAGED=1; fi
    [ "$PURGE" -eq 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall" 2
    [[ $JOURNAL_MAX =~ ^[0-9]+[KMG]?$ ]] || die "--journal-max: expected a size like 64M" 2
    if [ -n "$SERVER_REPLICAS" ]; then
        if [[ ! $SERVER_REPLICAS =~ ^[1-9][0-9]*$ ]] || [ "$SERVER_REPLICAS" -gt "$MAX_REPLICAS" ]; then
            die "--server-replicas: expected a number from 1 to $MAX_REPLICAS" 2
        fi
        [ "$WITH_SERVER" -eq 0 ] || die "--with-server or --server-replicas: choose one" 2
    fi
    if [ -n "$DEVICE_NAME" ] && ! valid_name "$DEVICE_NAME"; then
        die "--name: 1 to 64 characters, no quotes, backslashes or control characters" 2
    fi
    if [ -n "$SERVER_URL" ] && ! valid_url "$SERVER_URL"; then
        die "--server $SERVER_URL: expected http://HOST[:PORT][/PATH] or https://..." 2
    fi
    if [ "$STAGED" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
        die "run as root (sudo $PROG ...), or stage with --root DIR / --dry-run" 1
    fi
}

# --- the kernel command line (Raspberry Pi: cmdline.txt) ---------------------------------------

cmdline_file() {
    local candidate
    for candidate in /boot/firmware/cmdline.txt /boot/cmdline.txt; do
        if [ -f "$ROOT$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# Set KEY=VALUE tokens in cmdline.txt (one line). What was changed is recorded so that
# --uninstall restores it: "KEY" for an added token, "KEY=OLD" for a replaced value.
cmdline_apply() {
    local file tokens=() out=() setting key value token found changes=()
    file=$(cmdline_file) || {
        say "no cmdline.txt: console blanking is turned off by the unit at each start"
        return 0
    }
    read -r -a tokens <"$ROOT$file" || true
    for setting in "${CMDLINE_SETTINGS[@]}"; do
        key=${setting%%=*}
        value=${setting#*=}
        found=0
        out=()
        for token in "${tokens[@]}"; do
            if [ "${token%%=*}" = "$key" ]; then
                found=1
                [ "$token" = "$key=$value" ] || changes+=("$token")
                out+=("$key=$value")
            else
                out+=("$token")
            fi
        done
        if [ "$found" -eq 0 ]; then
            out+=("$key=$value")
            changes+=("$key")
        fi
        tokens=("${out[@]}")
    done
    [ "${#changes[@]}" -gt 0 ] || return 0
    printf '%s\n' "${tokens[*]}" | write_file "$file" -
    if [ "$DRY_RUN" -eq 0 ]; then
        mkdir -p "$ROOT$PREFIX"
        printf '%s\n' "${changes[@]}" >>"$ROOT$CMDLINE_RECORD"
    fi
}

cmdline_restore() {
    local file tokens=() out=() record token key changed
    file=$(cmdline_file) || return 0
    [ -f "$ROOT$CMDLINE_RECORD" ] || return 0
    read -r -a tokens <"$ROOT$file" || true
    while IFS= read -r record; do
        [ -n "$record" ] || continue
        key=${record%%=*}
        out=()
        for token in "${tokens[@]}"; do
            if [ "${token%%=*}" != "$key" ]; then
                out+=("$token")
            elif [ "$record" != "$key" ]; then
                out+=("$record")
            fi
        done
        tokens=("${out[@]}")
    done <"$ROOT$CMDLINE_RECORD"
    changed="${tokens[*]}"
    printf '%s\n' "$changed" | write_file "$file" -
}

# --- the GPU (Raspberry Pi: config.txt) -----------------------------------------------------------

bootconfig_file() {
    local candidate
    for candidate in /boot/firmware/config.txt /boot/config.txt; do
        if [ -f "$ROOT$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# The player needs the full KMS driver (vc4-kms-v3d): KMSDRM for the screen, V3D for OpenGL ES.
# Raspberry Pi OS bookworm has it under [all]; an image where it was removed or replaced by the
# fake-KMS overlay (vc4-fkms-v3d) gets it back. What changed is recorded for --uninstall:
# "added", or the fkms line that was replaced.
bootconfig_apply() {
    local file content
    file=$(bootconfig_file) || {
        say "no config.txt: not a Raspberry Pi, no GPU overlay to set"
        return 0
    }
    content=$(cat "$ROOT$file")
    if grep -qE "^[[:space:]]*$KMS_OVERLAY([,[:space:]]|\$)" <<<"$content"; then
        return 0
    fi
    local fkms
    fkms=$(grep -E '^[[:space:]]*dtoverlay=vc4-fkms-v3d([,[:space:]]|$)' <<<"$content" | head -n 1 || true)
    if [ -n "$fkms" ]; then
        content=$(awk -v old="$fkms" -v new="$KMS_OVERLAY" '$0 == old { print new; next } { print }' \
            <<<"$content")
    else
        content=$(printf '%s\n\n%s\n[all]\n%s' "$content" "$KMS_MARK" "$KMS_OVERLAY")
        fkms=added
    fi
    printf '%s\n' "$content" | write_file "$file" -
    if [ "$DRY_RUN" -eq 0 ]; then
        mkdir -p "$ROOT$PREFIX"
        printf '%s\n' "$fkms" >"$ROOT$BOOTCONFIG_RECORD"
    fi
    REBOOT_NEEDED=1
}

bootconfig_restore() {
    local file content record
    file=$(bootconfig_file) || return 0
    [ -f "$ROOT$BOOTCONFIG_RECORD" ] || return 0
    record=$(cat "$ROOT$BOOTCONFIG_RECORD")
    content=$(cat "$ROOT$file")
    if [ "$record" = added ]; then
        # Our block: a blank line, the mark, [all], the overlay.
        content=$(awk -v mark="$KMS_MARK" -v overlay="$KMS_OVERLAY" '
            { lines[NR] = $0 }
            END {
                for (i = 1; i <= NR; i++) {
                    if (lines[i] == mark && lines[i + 1] == "[all]" && lines[i + 2] == overlay) {
                        if (kept > 0 && out[kept] == "") kept--
                        i += 2
                        continue
                    }
                    out[++kept] = lines[i]
                }
                for (i = 1; i <= kept; i++) print out[i]
            }' <<<"$content")
    else
        content=$(awk -v old="$record" -v new="$KMS_OVERLAY" \
            '!done && $0 == new { print old; done = 1; next } { print }' <<<"$content")
    fi
    printf '%s\n' "$content" | write_file "$file" -
    remove_path "$BOOTCONFIG_RECORD"
}

# --- files ----------------------------------------------------------------------------------------

write_config() {
    local path=$CONFIG_DIR/player.toml
    if [ -f "$ROOT$path" ]; then
        if [ -z "$SERVER_URL" ] && [ -z "$DEVICE_NAME" ]; then
            say "keeping $path"
            return 0
        fi
        update_config "$path"
        return 0
    fi
    if [ -z "$SERVER_URL" ] && { [ "$WITH_SERVER" -eq 1 ] || [ -n "$SERVER_REPLICAS" ]; }; then
        SERVER_URL=http://127.0.0.1:$REPLICA_FIRST_PORT
    fi
    if [ -z "$SERVER_URL" ] && [ -t 0 ]; then
        read -r -p "Signage server URL (e.g. http://192.168.1.10:8080): " SERVER_URL
        valid_url "$SERVER_URL" || die "$SERVER_URL: expected http://HOST[:PORT] or https://..." 2
    fi
    [ -n "$SERVER_URL" ] || die "--server URL is required (no $path yet)" 2
    {
        printf '# Written by systemd/install.sh. After editing: sudo systemctl restart signage-player\n'
        printf '# Every key: docs/configuration.md\n\n'
        printf '[sync]\nserver_url = "%s"\n' "$SERVER_URL"
        [ -z "$DEVICE_NAME" ] || printf 'device_name = "%s"\n' "$DEVICE_NAME"
        printf '\n[player]\n'
        if [ "$REBOOT_COMMAND" -eq 1 ]; then
            printf '# Allowed by %s.\nreboot_command = ["systemctl", "reboot"]\n' "$POLKIT_RULE"
        fi
        printf '\n[display]\nfullscreen = true\nhide_cursor = true\n'
    } | write_file "$path" 0644
}

# An existing file keeps every edit; only the keys given on the command line change.
update_config() {
    local path=$1 content line key value
    content=$(cat "$ROOT$path")
    for key in server_url device_name; do
        value=$SERVER_URL
        [ "$key" = server_url ] || value=$DEVICE_NAME
        [ -n "$value" ] || continue
        line="$key = \"$value\""
        if grep -q "^$key = " <<<"$content"; then
            content=$(awk -v key="$key" -v line="$line" \
                'index($0, key " = ") == 1 { print line; next } { print }' <<<"$content")
        elif grep -q '^\[sync\]' <<<"$content"; then
            content=$(awk -v line="$line" '{ print } /^\[sync\]$/ { print line }' <<<"$content")
        else
            content=$(printf '%s\n\n[sync]\n%s' "$content" "$line")
        fi
    done
    printf '%s\n' "$content" | write_file "$path" 0644
}

write_server_config() {
    local path=$CONFIG_DIR/server.toml
    [ ! -f "$ROOT$path" ] || return 0
    if [ -n "$SERVER_REPLICAS" ]; then
        # Replicas are reached through a load balancer (nginx, docs/server.md), not directly.
        printf '%s\n' \
            "# Written by systemd/install.sh. After editing: sudo systemctl restart 'signage-server@*'" \
            '# Every key: docs/configuration.md; replicas: docs/server.md (Deployment).' \
            "# Each replica listens on the port of its unit (signage-server@PORT), not on port." '' \
            '[server]' 'host = "127.0.0.1"' \
            '# database_url = "postgresql+asyncpg://signage:SECRET@127.0.0.1/signage"' \
            '# redis_url = "redis://127.0.0.1:6379/0"' | write_file "$path" 0644
        return 0
    fi
    printf '%s\n' \
        '# Written by systemd/install.sh. After editing: sudo systemctl restart signage-server' \
        '# Every key: docs/configuration.md' '' \
        '[server]' 'host = "0.0.0.0"' 'port = 8080' | write_file "$path" 0644
}

# Replicas share presence, limits and events through Redis: without it each would keep a
# fleet of its own (as `signage server --workers` refuses). Checked before anything is
# installed; a missing server.toml is written (with the keys to fill in) first.
check_replicas_config() {
    local path=$CONFIG_DIR/server.toml
    [ -n "$SERVER_REPLICAS" ] && [ "$SERVER_REPLICAS" -gt 1 ] || return 0
    if [ ! -f "$ROOT$path" ]; then
        write_server_config
        [ "$DRY_RUN" -eq 0 ] || return 0
        die "wrote $path: set server.redis_url (and server.database_url) there (docs/server.md, Several replicas), then run again"
    fi
    grep -Eq '^[[:space:]]*redis_url[[:space:]]*=' "$ROOT$path" ||
        die "$SERVER_REPLICAS replicas need server.redis_url in $path (docs/server.md, Several replicas)"
}

# True when this machine runs the reference server (one unit or replicas).
server_here() {
    [ "$WITH_SERVER" -eq 1 ] || [ -n "$SERVER_REPLICAS" ]
}

# The instances --server-replicas asks for, one a line.
replica_units() {
    local i
    for ((i = 0; i < SERVER_REPLICAS; i++)); do
        printf 'signage-server@%d.service\n' $((REPLICA_FIRST_PORT + i))
    done
}

# Instances enabled by an earlier run that are no longer wanted: stopped and disabled.
retire_replicas() {
    local keep=$1 unit
    [ -f "$ROOT$REPLICAS_RECORD" ] || return 0
    while IFS= read -r unit; do
        [ -n "$unit" ] || continue
        grep -qxF "$unit" <<<"$keep" || run systemctl disable --now "$unit"
    done <"$ROOT$REPLICAS_RECORD"
    [ -n "$keep" ] || remove_path "$REPLICAS_RECORD"
}

enable_server() {
    local units=()
    if [ "$WITH_SERVER" -eq 1 ]; then
        retire_replicas ""
        run systemctl enable signage-server.service
        [ "$START" -eq 0 ] || run systemctl restart signage-server.service
    elif [ -n "$SERVER_REPLICAS" ]; then
        mapfile -t units < <(replica_units)
        run systemctl disable --now signage-server.service
        retire_replicas "$(replica_units)"
        replica_units | write_file "$REPLICAS_RECORD" 0644
        run systemctl enable "${units[@]}"
        [ "$START" -eq 0 ] || run systemctl restart "${units[@]}"
    fi
}

write_system_files() {
    local unit
    for unit in "${UNITS[@]}" "$REPLICA_TEMPLATE"; do
        write_file "$UNIT_DIR/$unit" 0644 <"$HERE/$unit"
    done
    write_file "$SYSUSERS_FILE" 0644 <"$HERE/signage.sysusers"
    sed "s/@JOURNAL_MAX@/$JOURNAL_MAX/" "$HERE/journald-signage.conf" | write_file "$JOURNALD_DROPIN" 0644
    if [ "$REBOOT_COMMAND" -eq 1 ]; then
        write_file "$POLKIT_RULE" 0644 <"$HERE/50-signage-reboot.rules"
    else
        remove_path "$POLKIT_RULE"
    fi
    if [ -f "$SOURCE/docs/install.md" ]; then
        write_file "$PREFIX/docs/install.md" 0644 <"$SOURCE/docs/install.md"
    fi
}

# --- install / uninstall ---------------------------------------------------------------------------

check_platform() {
    local arch
    arch=$(uname -m)
    case $arch in
        aarch64 | x86_64) ;;
        *) warn "$arch: pygame-ce and python-mpv need a 64-bit system (64-bit Raspberry Pi OS)" ;;
    esac
    if [ ! -f "$SOURCE/pyproject.toml" ] || [ ! -f "$SOURCE/constraints.txt" ]; then
        die "$SOURCE is not a signage checkout (no pyproject.toml and constraints.txt); use --source" 2
    fi
}

# The code is installed from a copy kept in $SRC_COPY: pip builds inside the directory it
# installs (build/, *.egg-info), which must not be the user's checkout, and the copy records
# exactly what this machine runs. Dot-directories (.git, .venv, caches) are left out.
install_code() {
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would copy: %s to %s\n' "$SOURCE" "$SRC_COPY"
    else
        rm -rf "$ROOT$SRC_COPY"
        mkdir -p "$ROOT$SRC_COPY"
        tar -C "$SOURCE" --exclude='./.*' --exclude=./build --exclude='./*.egg-info' \
            --exclude=__pycache__ -cf - . | tar -C "$ROOT$SRC_COPY" -xf -
        printf 'copied: %s to %s\n' "$SOURCE" "$SRC_COPY"
    fi
    run python3 -m venv "$VENV"
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
        -c "$SRC_COPY/constraints.txt" "$SRC_COPY"
}

install() {
    check_platform
    check_replicas_config
    say "configuration"
    write_config
    ! server_here || write_server_config
    say "units, user, journald cap, reboot permission"
    write_system_files
    say "console: no blanking, no cursor"
    cmdline_apply
    say "GPU: the KMS overlay (Raspberry Pi)"
    bootconfig_apply
    # The server decodes every upload before storing it: video with ffprobe (docs/server.md).
    ! server_here || APT_PACKAGES+=(ffmpeg)
    if [ "$USE_APT" -eq 1 ]; then
        say "apt packages: ${APT_PACKAGES[*]}"
        run env DEBIAN_FRONTEND=noninteractive apt-get update -q
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${APT_PACKAGES[@]}"
    fi
    run systemd-sysusers "$SYSUSERS_FILE"
    say "virtual environment in $VENV from the pinned $SOURCE/constraints.txt"
    install_code
    run "$VENV/bin/signage" config check "$CONFIG_DIR/player.toml"
    say "services"
    run systemctl daemon-reload
    run systemctl restart systemd-journald.service
    # The player owns tty1; logins stay on tty2 (Ctrl+Alt+F2) and ssh. Masked, not disabled:
    # logind would otherwise spawn autovt@tty1 (the same getty) at boot and, through the
    # unit's Conflicts=, stop the player.
    run systemctl mask getty@tty1.service autovt@tty1.service
    run systemctl enable signage-player.service
    enable_server
    [ "$START" -eq 0 ] || run systemctl restart signage-player.service
    say "done: the screen shows a pairing code; check with: sudo -u signage $VENV/bin/signage doctor"
    [ -z "$(cmdline_file || true)" ] || say "reboot once so the kernel command line applies"
    [ "$REBOOT_NEEDED" -eq 0 ] || say "reboot now: the GPU's KMS overlay was set in config.txt"
}

uninstall() {
    say "stopping and removing the services"
    local replicas=()
    [ ! -f "$ROOT$REPLICAS_RECORD" ] || mapfile -t replicas <"$ROOT$REPLICAS_RECORD"
    run systemctl disable --now "${UNITS[@]}" "${replicas[@]}" || warn "the units were not installed"
    run systemctl unmask getty@tty1.service autovt@tty1.service
    run systemctl start getty@tty1.service || warn "could not bring back the tty1 login"
    cmdline_restore
    bootconfig_restore
    local unit
    for unit in "${UNITS[@]}" "$REPLICA_TEMPLATE"; do
        remove_path "$UNIT_DIR/$unit"
    done
    remove_path "$JOURNALD_DROPIN"
    remove_path "$POLKIT_RULE"
    remove_path "$PREFIX"
    run systemctl daemon-reload
    run systemctl restart systemd-journald.service
    if [ "$PURGE" -eq 1 ]; then
        say "purging configuration, state and the signage users"
        remove_path "$CONFIG_DIR"
        remove_path /var/lib/signage
        remove_path /var/lib/private/signage-server
        remove_path /var/lib/signage-server
        remove_path "$SYSUSERS_FILE"
        local user
        for user in signage signage-server; do
            if [ "$STAGED" -eq 1 ] || getent passwd "$user" >/dev/null; then
                run userdel "$user"
            fi
        done
    else
        say "kept $CONFIG_DIR, /var/lib/signage (credentials, cache) and the signage user"
    fi
}

main() {
    parse_args "$@"
    [ "$STAGED" -eq 0 ] || say "staged run: no command is executed${ROOT:+; files go under $ROOT}"
    if [ "$ACTION" = uninstall ]; then uninstall; else install; fi
}

main "$@"
