# sandpen's collection sandbox. Runs in a throwaway container of the task's own image, as the
# task's user, with no network and no credentials, after the task's container is gone. Every
# git setting the task may have planted (filters, hooks, fsmonitor, includes, nested
# repositories...) can only ever run here, inside the sandbox, never on the host.
#
# Arguments: the base commit, the task id, the run id, when the checkout was made (epoch s), and
# the salvage's bounds: the largest uncommitted file it takes and the most it takes in all
# (bytes).
# /sandpen-out/start-refs holds the checkout's refs as sandpen made it ("<oid> <ref>" lines).
# Writes /sandpen-out/result.bundle holding HEAD, every branch the task created or moved, and
# the commits no branch reaches, and prints lines "sandpen-collect: KEY VALUE" for the host
# (untrusted hints: the host checks what it uses).
set -u
base=$1 task=$2 run=$3 since=${4:-0} max_file=${5:-10485760} max_total=${6:-104857600}
# Where the user's object store is mounted, read-only (OBJECTS_MOUNT in workspace/objects.rs).
borrowed=/run/sandpen/objects
out=/sandpen-out
say() { printf 'sandpen-collect: %s %s\n' "$1" "$2"; }
nl='
'

cd /workspace || { echo "the checkout is not mounted" >&2; exit 10; }
if [ -L .git ] || [ ! -d .git ]; then
    echo ".git is no longer a directory (the task replaced it): there is no repository to collect" >&2
    exit 11
fi

# Files that point git at other directories (`commondir` would make the checkout a worktree of
# another repository, alternates would borrow other objects, a `core.worktree` would move the tree):
# in here they point at nothing, so they go, and git is told where the repository is.
# A task stopped in the middle of a git command leaves its locks behind, and no git of the task
# runs any more (its CLI ended, or its container is gone): they would fail the salvage commit.
alternates=.git/objects/info/alternates
# Only what is there is removed (most often nothing: no `rm` process); sandpen's own alternates,
# a plain file, is written over in place below.
keep=
[ -d "$borrowed" ] && [ -f "$alternates" ] && [ ! -L "$alternates" ] && keep=1
stale=
for f in .git/commondir .git/gitdir "$alternates" .git/objects/info/http-alternates \
    .git/index.lock .git/HEAD.lock; do
    [ "$f" = "$alternates" ] && [ -n "$keep" ] && continue
    if [ -e "$f" ] || [ -L "$f" ]; then stale="$stale $f"; fi
done
[ -z "$stale" ] || rm -f $stale
# The checkout borrows the user's objects from the read-only mount, whatever the task wrote
# there. (Once collected, the host renames every .git of the checkout aside: no git on the
# host ever reads this repository.)
if [ -d "$borrowed" ]; then
    { [ -d .git/objects/info ] || mkdir -p .git/objects/info; } \
        && { printf '%s\n' "$borrowed" > "$alternates" \
            || { rm -f "$alternates" && printf '%s\n' "$borrowed" > "$alternates"; }; } 2>/dev/null
fi
export GIT_DIR=/workspace/.git GIT_WORK_TREE=/workspace GIT_CEILING_DIRECTORIES=/

g() {
    git --no-replace-objects -c core.hooksPath=/dev/null -c core.fsmonitor=false \
        -c 'safe.directory=*' -c commit.gpgsign=false -c core.pager=cat \
        -c submodule.recurse=false "$@"
}

# Paths that look like credentials stay out of the salvage: they stay in the checkout, and the
# report names them.
set -- ':(exclude,glob)**/.env' ':(exclude,glob)**/.env.*' ':(exclude,glob)**/*.pem' \
    ':(exclude,glob)**/*.key' ':(exclude,glob)**/*.p12' ':(exclude,glob)**/*.pfx' \
    ':(exclude,glob)**/id_rsa' ':(exclude,glob)**/id_dsa' ':(exclude,glob)**/id_ecdsa' \
    ':(exclude,glob)**/id_ed25519' ':(exclude,glob)**/.netrc'

# The salvage stores the files as the task left them: no filter the task set up (clean,
# smudge, process) may rewrite or swallow them. info/attributes outranks .gitattributes; the
# task's own is put back after the commit (which may hash files again).
attrs=.git/info/attributes
[ -e "$attrs" ] || [ -L "$attrs" ] && mv "$attrs" "$attrs.sandpen-saved"
{ [ -d .git/info ] || mkdir -p .git/info; } && printf '* -filter\n' > "$attrs"
# The common case first: a task that left its checkout as it got it. No object in its own
# store (every commit, stash or tag writes one there: the borrowed store is read-only), its refs
# as sandpen recorded them, nothing changed or new in its tree (seen without filters, as `add`
# would see it; a new nested repository shows as a new directory), HEAD on a branch. Then
# nothing is salvaged, bundled or lost: said with two git processes and the shell's own
# built-ins, where the whole collection runs some forty. In a short task's container every
# process counts (on an engine whose storage is fuse-overlayfs, each reads its executable
# through FUSE anew).
# Files in the store's directories (loose objects, packs: where git looks) but info/.
own_objects() {
    for f in .git/objects/*/*; do
        case $f in .git/objects/info/*) continue ;; esac
        [ -e "$f" ] || [ -L "$f" ] && return 0
    done
    return 1
}
# The lines of a file, as `$(cat FILE)` gives them, without a process.
lines_of() {
    lines= line=
    while IFS= read -r line || [ -n "$line" ]; do lines="$lines$line$nl"; line=; done < "$1"
    lines=${lines%"$nl"}
}
lines_of "$out/start-refs"
# `git status --porcelain=v2 --branch`: "# branch.oid OID" and "# branch.head NAME" (the
# branch's short name; "(detached)", or the full name of a symbolic HEAD outside refs/heads),
# then one line per change. Only "# " lines: nothing changed.
if ! own_objects \
    && [ "$(g for-each-ref --format='%(objectname) %(refname)' 2>/dev/null)" = "$lines" ] \
    && st=$(g status --porcelain=v2 --branch --untracked-files=all 2>/dev/null); then
    head= hb= changed=
    while IFS= read -r line; do
        case $line in
        "# branch.oid "*) head=${line#"# branch.oid "} ;;
        "# branch.head "*) hb=${line#"# branch.head "} ;;
        "# "*) ;;
        *) changed=1 ;;
        esac
    done <<EOF_STATUS
$st
EOF_STATUS
    case $head in *[!0-9a-f]* | '') head= ;; esac
    case $hb in '(detached)' | refs/* | '') hb= ;; esac
    if [ -z "$changed" ] && [ ${#head} -ge 40 ] && [ -n "$hb" ]; then
        rm -f "$attrs"
        [ -e "$attrs.sandpen-saved" ] || [ -L "$attrs.sandpen-saved" ] && mv "$attrs.sandpen-saved" "$attrs"
        say head "$head"
        say head-branch "$hb"
        say unreachable-commits 0
        exit 0
    fi
fi
# Nested repositories: `git add` would record a directory holding its own .git as a gitlink,
# and its files would never reach the branch. Each one the repository does not already track
# as a gitlink (a submodule) has its .git moved aside while its files are added, then put back.
aside=.sandpen-nested-git-$run
: > "$out/moved"
find . -name .git -prune -print 2>/dev/null | head -n 1000 > "$out/nested"
while IFS= read -r p; do
    [ "$p" = ./.git ] && continue
    d=${p%/.git}; d=${d#./}
    [ -e "$p" ] || [ -L "$p" ] || continue
    if g ls-files --stage -- "$d" | grep -q '^160000 '; then
        say nested-kept "$d	a submodule: the repository tracks it as a gitlink, its own commits are not collected"
    elif g check-ignore -q -- "$d"; then
        :
    elif [ -e "$d/$aside" ] || [ -L "$d/$aside" ]; then
        say nested-kept "$d	its .git could not be moved aside ($aside exists)"
    elif mv "$p" "$d/$aside"; then
        printf '%s\n' "$d" >> "$out/moved"
        say nested-files "$d"
    else
        say nested-kept "$d	its .git could not be moved aside"
    fi
done < "$out/nested"
set -- "$@" ":(exclude,glob)**/$aside" ":(exclude,glob)**/$aside/**"
# What the host renamed aside when it last collected (workspace/inert.rs): never content.
set -- "$@" ":(exclude,glob)**/.git.sandpen-inert*" ":(exclude,glob)**/.git.sandpen-inert*/**"
# A name with a line break cannot be listed safely below: such paths stay out (named at the end).
set -- "$@" ":(exclude,glob)**/*$nl*" ":(exclude,glob)**/*$nl*/**"
# Large files stay out of the salvage (they stay in the checkout; the report names them with
# their sizes): each one above max_file bytes, and, the smallest taken first, whatever would
# bring the salvage above max_total bytes. Sizes are what the files hold now (wc -c).
g -c core.quotePath=false ls-files -z --others --modified --exclude-standard -- . "$@" 2>/dev/null \
    | xargs -0 -r sh -c 'wc -c /dev/null "$@" 2>/dev/null | sed "1d;\$d"' sh \
    | sort -n | awk -v f="$max_file" -v t="$max_total" '
        { n = $1; p = $0; sub(/^ *[0-9]+ /, "", p) }
        n > f || sum + n > t { print n "\t" p; next }
        { sum += n }' > "$out/large"
tab=$(printf '\t')
while IFS=$tab read -r size path; do
    set -- "$@" ":(exclude,literal)$path"
    say left-out-large "$size	$path"
done < "$out/large"
# Files whose index entry looks stale (a new owner, a racy timestamp) are compared first, so
# that `add` does not hash unchanged files again: git writes anew, locally, an object it cannot
# freshen in the read-only borrowed store.
g update-index -q --refresh > /dev/null 2>&1
if ! g add --all -- . "$@"; then
    echo "git add failed; committing what it staged" >&2
fi
if ! g diff --cached --quiet --exit-code --no-ext-diff --no-textconv; then
    msg="sandpen: salvage uncommitted work of task $task

The task ended with these changes uncommitted; sandpen committed them so that
nothing is lost.

Sandpen-Salvaged: true
Sandpen-Run: $run
Sandpen-Task: $task"
    g commit --quiet --no-verify -m "$msg" || { echo "the salvage commit failed" >&2; exit 13; }
    say salvaged yes
fi
rm -f "$attrs"
while IFS= read -r d; do
    mv "$d/$aside" "$d/.git" || echo "could not put back $d/.git (it is at $d/$aside)" >&2
done < "$out/moved"
[ -e "$attrs.sandpen-saved" ] || [ -L "$attrs.sandpen-saved" ] && mv "$attrs.sandpen-saved" "$attrs"
# What was left out, for the report (C-quoted by git when unusual): one status of the
# excluded patterns, made positive.
n=$#
for p in "$@"; do
    case $p in *"$aside"* | *sandpen-inert* | ":(exclude,literal)"*) continue ;; esac
    set -- "$@" ":(glob)${p#:(exclude,glob)}"
done
shift "$n"
g status --porcelain --untracked-files=all -- "$@" 2>/dev/null \
    | cut -c4- | sort -u | head -n 100 | while IFS= read -r path; do say left-out "$path"; done

head=$(g rev-parse --verify --quiet 'HEAD^{commit}') || { echo "the checkout has no HEAD commit" >&2; exit 14; }
say head "$head"
# A HEAD on anything but a local branch counts as detached.
hb=$(g symbolic-ref --quiet HEAD) || hb=
case $hb in
refs/heads/*) say head-branch "${hb#refs/heads/}" ;;
*) hb= ;;
esac

# What sandpen made the checkout with is known to the user's repository: only what is beyond
# it travels in the bundle.
touch "$out/start-refs"
{ printf '%s\n' "$base"; cut -d' ' -f1 "$out/start-refs"; } \
    | g cat-file --batch-check='%(objectname) %(objecttype)' 2>/dev/null \
    | awk '$2 != "missing" { print "^" $1 }' | sort -u > "$out/known"
beyond() { { printf '%s\n' "$1"; cat "$out/known"; } | g rev-list -n 1 --stdin 2>/dev/null | grep -q .; }
is_commit() { [ "$(g cat-file -t "$1" 2>/dev/null)" = commit ]; }

# Refs the task created or moved.
g for-each-ref --format='%(objectname) %(refname)' > "$out/refs-now" || { echo "listing refs failed" >&2; exit 16; }
awk 'NR == FNR { seen[$0] = 1; next } !($0 in seen)' "$out/start-refs" "$out/refs-now" \
    | grep -v ' refs/sandpen-collect/' > "$out/changed"
: > "$out/bundle-refs"
: > "$out/tips"
n=0
while read -r oid ref; do
    case $ref in
    refs/heads/*)
        n=$((n + 1))
        [ "$n" -eq 1001 ] && say branches-over 1000
        [ "$n" -gt 1000 ] && continue
        is_commit "$oid" || continue
        say branch "$oid ${ref#refs/heads/}"
        beyond "$oid" && printf '%s\n' "$ref" >> "$out/bundle-refs"
        ;;
    # Tags are listed, not imported: what only a tag reaches is kept like any lost commit.
    refs/tags/*)
        say tag "$oid ${ref#refs/tags/}"
        g rev-parse --verify --quiet "$oid^{commit}" >> "$out/tips"
        ;;
    # A stash, notes or any other ref: its commits are reachable from no branch.
    *) is_commit "$oid" && printf '%s\n' "$oid" >> "$out/tips" ;;
    esac
done < "$out/changed"

# Commits no branch or HEAD reaches any more (a deleted branch, a detached HEAD left
# behind): the reflogs name them; where the task turned reflogs off, fsck's dangling commits
# made since the checkout.
if [ ! -f .git/logs/HEAD ] || [ "$(g config --bool core.logAllRefUpdates)" = false ]; then
    g fsck --connectivity-only --no-reflogs --no-progress 2>/dev/null \
        | awk '$1 == "dangling" && $2 == "commit" { print $3 }' \
        | g log --no-walk=unsorted --stdin --format='%H %ct' 2>/dev/null \
        | awk -v since="$since" '$2 >= since { print $1 }' > "$out/dangling"
    # The borrowed store's commits are dangling here too (the user's other branches, and
    # commits the user made meanwhile): only the checkout's own store holds the task's.
    if [ -f "$alternates" ]; then
        mv "$alternates" "$alternates.sandpen-aside"
        g cat-file --batch-check='%(objectname) %(objecttype)' < "$out/dangling" 2>/dev/null \
            | awk '$2 == "commit" { print $1 }' >> "$out/tips"
        mv "$alternates.sandpen-aside" "$alternates"
    else
        cat "$out/dangling" >> "$out/tips"
    fi
fi
# (Revisions on stdin are plain ids and ^ids: git before 2.42 takes no options there.)
cat "$out/tips" "$out/known" | g rev-list --parents --reflog --stdin --not --branches HEAD \
    2>/dev/null > "$out/lost"
awk '{ for (i = 2; i <= NF; i++) parent[$i] = 1; c[NR] = $1 } END { for (i = 1; i <= NR; i++) if (!(c[i] in parent)) print c[i] }' "$out/lost" \
    | head -n 100 > "$out/lost-tips"
n=0
while read -r oid; do
    n=$((n + 1))
    g update-ref "refs/sandpen-collect/unreachable-$n" "$oid" || continue
    printf 'refs/sandpen-collect/unreachable-%s\n' "$n" >> "$out/bundle-refs"
    say unreachable "$n $oid"
done < "$out/lost-tips"
# Counted with a detached HEAD's own commits.
[ -n "$hb" ] && detached= || detached=HEAD
lost=$({ cat "$out/lost-tips"; [ -n "$detached" ] && echo HEAD; cat "$out/known"; } \
    | g rev-list --count --stdin --not --branches 2>/dev/null)
say unreachable-commits "${lost:-0}"

# The bundle: HEAD (unless the user's repository already has it) and the refs above.
{ beyond "$head" && echo HEAD; cat "$out/bundle-refs"; } > "$out/bundle-list"
if [ -s "$out/bundle-list" ]; then
    cat "$out/bundle-list" "$out/known" | g bundle create --quiet "$out/result.bundle" --stdin || exit 15
    say bundle result.bundle
fi
[ "$n" -eq 0 ] || g for-each-ref --format='%(refname)' refs/sandpen-collect | while read -r r; do g update-ref -d "$r"; done
exit 0
