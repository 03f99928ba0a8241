# sandpen's collection sandbox. Runs in a throwaway container of the task's own image, as the
# task's user, with no network and no credentials, after the task's container is gone. Every
# git setting the task may have planted (filters, hooks, fsmonitor, includes, nested
# repositories...) can only ever run here, inside the sandbox, never on the host.
#
# Arguments: the base commit, the task id, the run id.
# Writes /sandpen-out/result.bundle when HEAD has commits the base does not, and prints lines
# "sandpen-collect: KEY VALUE" for the host (untrusted hints: the host checks what it uses).
set -u
base=$1 task=$2 run=$3
out=/sandpen-out
say() { printf 'sandpen-collect: %s %s\n' "$1" "$2"; }

cd /workspace || { echo "the checkout is not mounted" >&2; exit 10; }
if [ -L .git ] || [ ! -d .git ]; then
    echo ".git is no longer a directory (the task replaced it): there is no repository to collect" >&2
    exit 11
fi

# Files that point git at other directories (`commondir` would make the checkout a worktree of
# another repository, alternates would borrow objects, a `core.worktree` would move the tree):
# in here they point at nothing, so they go, and git is told where the repository is.
rm -f .git/commondir .git/gitdir .git/objects/info/alternates .git/objects/info/http-alternates
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
mkdir -p .git/info && printf '* -filter\n' > "$attrs"
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
[ -e "$attrs.sandpen-saved" ] || [ -L "$attrs.sandpen-saved" ] && mv "$attrs.sandpen-saved" "$attrs"
# What was left out, for the report (C-quoted by git when unusual).
for p in "$@"; do
    g status --porcelain --untracked-files=all -- ":(glob)${p#:(exclude,glob)}" 2>/dev/null
done | cut -c4- | sort -u | head -n 100 | while IFS= read -r path; do say left-out "$path"; done

head=$(g rev-parse --verify --quiet 'HEAD^{commit}') || { echo "the checkout has no HEAD commit" >&2; exit 14; }
say head "$head"
[ "$head" = "$base" ] && exit 0
# A HEAD the base already contains needs no objects: the host points the branch at it.
g merge-base --is-ancestor "$head" "$base" 2>/dev/null && exit 0
if g cat-file -e "$base^{commit}" 2>/dev/null; then
    g bundle create --quiet "$out/result.bundle" HEAD "^$base" || exit 15
else
    g bundle create --quiet "$out/result.bundle" HEAD || exit 15
fi
say bundle result.bundle
