#!/usr/bin/env bash
# POSIX ACLs through the mount (FUSE_POSIX_ACL: the kernel enforces and caches them, roamfs
# stores them): setfacl/getfacl, enforcement for another user, chmod moving the mask, the
# umask applying only without a default ACL, default ACL inheritance, an ACL that says no
# more than the mode not being stored, removal, and another host seeing (and re-reading
# after a change) the same ACLs; they survive a remount with an empty cache. security.selinux
# is refused as not supported, which lets `ls -l` stop probing it per entry.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v setfacl >/dev/null && command -v getfacl >/dev/null || skip "setfacl/getfacl missing (package acl)"

rfs_format A
mkdir -p "$WORK/A" "$WORK/B"
chmod 0755 "$WORK" "$WORK/A" "$WORK/B"   # uid 65534 must reach the mount points
RFS_STORE_URL[B]=$(rfs_store A)
rfs_mount A -o allow_other
rfs_mount B -o allow_other
a=$(rfs_mp A) b=$(rfs_mp B)
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
acl_of() { getfacl -cpn "$1" 2>/dev/null | grep -v '^$' | tr -s '\t\n' '  '; }

step "without a default ACL the umask applies (the kernel leaves it to us: FUSE_DONT_MASK)"
(umask 027 && touch "$a/u-file" && mkdir "$a/u-dir")
assert_eq 640 "$(stat -c %a "$a/u-file")" "mode of a file made under umask 027"
assert_eq 750 "$(stat -c %a "$a/u-dir")" "mode of a directory made under umask 027"

step "an access ACL grants another user what the mode does not, and is enforced"
echo "for nobody" >"$a/shared"; chmod 0600 "$a/shared"
if as_nobody cat "$a/shared" >/dev/null 2>&1; then fail "uid 65534 read a 0600 file before any ACL"; fi
setfacl -m u:65534:r "$a/shared"
assert_eq "user::rw- user:65534:r-- group::--- mask::r-- other::--- " "$(acl_of "$a/shared")" "ACL after setfacl -m"
assert_eq 640 "$(stat -c %a "$a/shared")" "group bits show the mask"
assert_eq "for nobody" "$(as_nobody cat "$a/shared")" "uid 65534 reads through its ACL entry"
ls -l "$a/shared" | grep -q '^-rw-r-----+ ' || fail "ls -l does not flag the ACL: $(ls -l "$a/shared")"
getfattr -m - -d "$a/shared" 2>/dev/null | grep -q '^system.posix_acl_access' \
  || fail "listxattr does not name system.posix_acl_access"

step "chmod moves the mask: the named entry loses its effective rights"
chmod 0600 "$a/shared"
getfacl -cpn "$a/shared" | grep -q '^mask::---' || fail "chmod g-r did not clear the mask: $(acl_of "$a/shared")"
if as_nobody cat "$a/shared" >/dev/null 2>&1; then fail "uid 65534 still reads after the mask was cleared"; fi
chmod 0640 "$a/shared"
assert_eq "for nobody" "$(as_nobody cat "$a/shared")" "uid 65534 reads again after chmod g+r"

step "an ACL that says no more than the mode only sets the mode"
touch "$a/plain"
setfacl -m u::rwx,g::r-x,o::- "$a/plain"
assert_eq 750 "$(stat -c %a "$a/plain")" "mode set through a minimal ACL"
if getfattr -m - -d "$a/plain" 2>/dev/null | grep -q posix_acl; then fail "a minimal ACL was stored as an xattr"; fi
ls -l "$a/plain" | grep -q '^-rwxr-x--- ' || fail "minimal ACL flagged by ls -l: $(ls -l "$a/plain")"

step "a default ACL is inherited (and the umask ignored) by new files and directories"
mkdir "$a/proj"
setfacl -d -m u:65534:rwx "$a/proj"
if setfacl -d -m u:65534:rwx "$a/shared" 2>/dev/null; then fail "a default ACL was accepted on a file"; fi
(umask 077 && echo new >"$a/proj/new" && mkdir "$a/proj/sub")
assert_eq "user::rw- user:65534:rwx #effective:rw- group::r-x #effective:r-- mask::rw- other::r-- " \
  "$(acl_of "$a/proj/new")" "ACL of a file created under the default ACL (umask 077 ignored)"
getfacl -cpn "$a/proj/sub" | grep -q '^default:user:65534:rwx' || fail "the new directory did not inherit the default ACL"
getfacl -cpn "$a/proj/sub" | grep -q '^user:65534:rwx' || fail "the new directory has no access ACL entry"
as_nobody sh -c "echo by-nobody > '$a/proj/sub/f'" || fail "uid 65534 cannot create where its default entry allows"

step "another host sees the ACLs, and sees a change although its kernel caches them"
for ((i = 0; i < 50; i++)); do [ -e "$b/proj/sub/f" ] && break; sleep 0.1; done
assert_eq "$(acl_of "$a/shared")" "$(acl_of "$b/shared")" "ACL of shared on host B"
assert_eq "for nobody" "$(as_nobody cat "$b/shared")" "uid 65534 reads through the ACL on host B"
setfacl -x u:65534 "$a/shared"
for ((i = 0; i < 50; i++)); do getfacl -cpn "$b/shared" | grep -q 'user:65534' || break; sleep 0.1; done
getfacl -cpn "$b/shared" | grep -q 'user:65534' && fail "host B still shows the removed entry: $(acl_of "$b/shared")"
if as_nobody cat "$b/shared" >/dev/null 2>&1; then fail "host B still lets uid 65534 read after the entry was removed"; fi

step "setfacl -b removes the ACL"
setfacl -b "$a/proj/new"
if getfattr -m - -d "$a/proj/new" 2>/dev/null | grep -q posix_acl_access; then fail "setfacl -b left the ACL"; fi

step "security.selinux is not supported, so ls -l asks for it once per mount, not per entry"
if [ -e /sys/fs/selinux/enforce ]; then
  step "skipped: SELinux is enabled here, the kernel answers security.selinux itself"
else
command -v strace >/dev/null || fail "strace missing (package strace; scripts/deps.sh installs it)"
got=$(getfattr -n security.selinux "$a/shared" 2>&1 || true)
case "$got" in *'Operation not supported'*) ;; *) fail "getxattr(security.selinux) is not EOPNOTSUPP: $got" ;; esac
if setfattr -n security.selinux -v system_u:object_r:foo_t "$a/shared" 2>/dev/null; then
  fail "setxattr(security.selinux) succeeded although it is not stored"
fi
mkdir "$a/many" && for i in $(seq 1 40); do : >"$a/many/f$i"; done
strace -qq -e trace=getxattr,lgetxattr -o "$WORK/ls.trace" ls -l "$a/many" >/dev/null
probes=$(grep -c 'security.selinux' "$WORK/ls.trace" || true)
[ "$probes" -le 2 ] || fail "ls -l of 40 files probed security.selinux $probes times (each a FUSE round trip)"
got=$(setfattr -x security.selinux "$a/shared" 2>&1 || true)
case "$got" in *'Operation not supported'*) ;; *) fail "removexattr(security.selinux) is not EOPNOTSUPP: $got" ;; esac
setfattr -n user.keep -v 1 "$a/many/f1"
assert_eq 1 "$(getfattr --only-values -n user.keep "$a/many/f1")" "user xattrs still work"
fi

step "ACLs survive a remount with an empty cache"
want_shared=$(acl_of "$a/shared") want_sub=$(getfacl -cpn "$a/proj/sub")
rfs_umount B
rfs_umount A
rfs_new_cache A
rfs_mount A -o allow_other
assert_eq "$want_shared" "$(acl_of "$a/shared")" "ACL of shared after remount"
assert_eq "$want_sub" "$(getfacl -cpn "$a/proj/sub")" "ACLs of proj/sub after remount"
rfs_umount A
