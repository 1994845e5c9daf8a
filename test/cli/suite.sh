#!/usr/bin/env bash
# suite.sh: end-to-end tests of the `metacenter` CLI in offline mode (--data-dir): every command,
# --json shapes, S3 error names and exit codes, --help texts, bad input, a locked data dir.
# Usage: test/cli/suite.sh BUILD_DIR. Prints "N passed, N failed" last; exits 1 on failure.
set -uo pipefail
BUILD=${1:-build}
MC=$(cd "$(dirname "$BUILD/metacenter")" && pwd)/metacenter
[ -x "$MC" ] || { echo "no $MC"; echo "0 passed, 1 failed"; exit 1; }
T=$(mktemp -d)
LOCKPID=
cleanup() {
    [ -n "$LOCKPID" ] && kill "$LOCKPID" 2>/dev/null && wait "$LOCKPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
D=$T/data
OUT=$T/out
ERR=$T/err
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $1"
    echo "  stdout: $(head -c 600 "$OUT")"
    echo "  stderr: $(head -c 600 "$ERR")"
}

# run ARGS...: runs metacenter, keeps stdout/stderr/exit code.
run() {
    "$MC" "$@" >"$OUT" 2>"$ERR"
    RC=$?
}
# ok_run DESC ARGS...: the command must exit 0 with an empty stderr.
ok_run() {
    local d=$1
    shift
    run "$@"
    if [ "$RC" -eq 0 ] && [ ! -s "$ERR" ]; then ok; else bad "$d (exit $RC)"; fi
}
# err_run DESC EXIT NAME ARGS...: exit code EXIT and exactly one stderr line starting "NAME: ".
err_run() {
    local d=$1 want=$2 name=$3
    shift 3
    run "$@"
    local lines
    lines=$(wc -l <"$ERR")
    if [ "$RC" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q "^$name: " "$ERR"; then
        ok
    else
        bad "$d (want exit $want + '$name:', got exit $RC, $lines stderr lines)"
    fi
}
# has DESC STRING: stdout of the last run contains STRING (fixed string).
has() {
    if grep -qF -- "$2" "$OUT"; then ok; else bad "$1 (stdout lacks '$2')"; fi
}
# jtrue DESC PYEXPR: python expression over j = json of the last stdout must be true.
jtrue() {
    if python3 -c 'import json,sys
j=json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$OUT" "$2" 2>/dev/null; then ok; else bad "$1 ($2)"; fi
}
M() { run --data-dir "$D" "$@"; }

start=$(date +%s)

# ---- help and usage ----
run --help
[ "$RC" -eq 0 ] && ok || bad "--help exits 0"
for c in "bucket create" "bucket rm" "bucket ls" "bucket head" "bucket versioning" "put " "get " \
    "head " "rm " "ls " "versions " "cluster status" "cluster add" "cluster promote" \
    "cluster remove" "cluster transfer-leader" "snapshot save" "snapshot restore" "check" \
    "--endpoints" "--data-dir" "--consistency" "--max-staleness-ms" "--json" "exit codes"; do
    has "--help mentions $c" "$c"
done
run
[ "$RC" -eq 2 ] && grep -q "usage:" "$ERR" && ok || bad "no args: exit 2 with usage on stderr"
run put --help
[ "$RC" -eq 0 ] && ok || bad "put --help exits 0"
for f in --size --etag --content-type --meta --storage-class --if-match --if-none-match \
    --inline-file "BUCKET KEY"; do
    has "put --help mentions $f" "$f"
done
run ls --help
for f in --prefix --delimiter --start-after --continuation-token --max-keys; do
    has "ls --help mentions $f" "$f"
done
run versions --help
for f in --prefix --key-marker --version-id-marker --max-keys is_latest next_key_marker; do
    has "versions --help mentions $f" "$f"
done
run get -h
has "get -h works" "--version-id"
run bucket --help
has "bucket --help lists subcommands" "bucket versioning"
run help rm
has "help rm" "delete marker"
run cluster add --help
has "cluster add --help" "--learner"
err_run "unknown command" 2 InvalidArgument frobnicate
err_run "unknown flag" 2 InvalidArgument --data-dir "$D" bucket ls --bogus
err_run "flag of another command" 2 InvalidArgument --data-dir "$D" ls bk1 --size 3
err_run "missing argument" 2 InvalidArgument --data-dir "$D" put bk1
err_run "too many arguments" 2 InvalidArgument --data-dir "$D" get bk1 k extra
err_run "flag without value" 2 InvalidArgument --data-dir "$D" ls bk1 --prefix
err_run "boolean with value" 2 InvalidArgument --data-dir "$D" bucket create bkb --versioning=yes
err_run "group without subcommand" 2 InvalidArgument bucket
err_run "unknown subcommand" 2 InvalidArgument bucket explode x
err_run "bad consistency" 2 InvalidArgument --consistency strong bucket ls
err_run "staleness without stale" 2 InvalidArgument --max-staleness-ms 5 bucket ls
err_run "endpoints and data-dir" 2 InvalidArgument --endpoints 127.0.0.1:1 --data-dir "$D" bucket ls
err_run "repeated flag" 2 InvalidArgument --data-dir "$D" put bk1 k --size 1 --size 2
grep -q "metacenter put --help" "$ERR" && ok || bad "usage error names 'metacenter put --help'"

# ---- serve flags: refused before anything starts ----
# --snapshot-tail 0 once meant the Raft core's 5,000 entries while WAL compaction kept none
# (decisions.md, session 12); the YAML max_log_entries: 0 is in test_config_load.c. Under
# `timeout` and on ephemeral ports, so that a serve that accepts it stops and fails the test.
timeout 20 "$MC" serve --data-dir "$T/tail0" --listen-client 127.0.0.1:0 \
    --listen-peer 127.0.0.1:0 --listen-http off --snapshot-tail 0 >"$OUT" 2>"$ERR"
RC=$?
if [ "$RC" -eq 2 ] && [ "$(wc -l <"$ERR")" -eq 1 ] &&
    grep -qF "InvalidArgument: --snapshot-tail wants an integer in [1, 4294967295], got '0'" "$ERR"; then
    ok
else
    bad "serve --snapshot-tail 0 is refused (want exit 2 + one InvalidArgument line, got exit $RC)"
fi
[ ! -e "$T/tail0" ] && ok || bad "a refused serve created its data dir"

# ---- reads of a data dir that does not exist create nothing ----
err_run "read of a missing data dir" 1 NotFound --data-dir "$D" bucket ls
[ ! -e "$D" ] && ok || bad "a read created the data dir"
mkdir -p "$T/foreign" && echo hi >"$T/foreign/notes.txt"
err_run "foreign dir refused" 1 NotMetacenterDir --data-dir "$T/foreign" bucket create bk1
[ ! -e "$T/foreign/engine" ] && ok || bad "foreign dir was written into"

# ---- buckets ----
M bucket create bk1
[ "$RC" -eq 0 ] && [ -d "$D/engine" ] && ok || bad "bucket create makes DIR/engine"
[ "$(cat "$D/METACENTER" 2>/dev/null)" = "metacenter-datadir 1" ] && ok ||
    bad "a new data dir gets the METACENTER marker the node expects"
mkdir -p "$T/marked" && echo "metacenter-datadir 1" >"$T/marked/METACENTER"
ok_run "a marked dir without engine/ is accepted" --data-dir "$T/marked" bucket create bkm
err_run "restore into a foreign dir" 1 NotMetacenterDir snapshot restore "$T/foreign/notes.txt" --data-dir "$T/foreign"
err_run "bucket exists" 1 BucketAlreadyExists --data-dir "$D" bucket create bk1
err_run "bad bucket name" 1 InvalidBucketName --data-dir "$D" bucket create Bad_Name
err_run "short bucket name" 1 InvalidBucketName --data-dir "$D" bucket create ab
ok_run "versioned bucket" --data-dir "$D" bucket create vbk --versioning
ok_run "bucket ls" --data-dir "$D" bucket ls
has "bucket ls header" "VERSIONING"
has "bucket ls row" "vbk"
M --json bucket ls
jtrue "bucket ls --json" '[b["name"] for b in j["buckets"]]==["bk1","vbk"] and j["buckets"][1]["versioning"]=="enabled" and j["buckets"][0]["versioning"]=="unversioned" and j["buckets"][0]["created_ns"]>0'
M bucket head vbk --json
jtrue "bucket head --json" 'j["name"]=="vbk" and j["versioning"]=="enabled"'
err_run "bucket head missing" 1 NoSuchBucket --data-dir "$D" bucket head nope
err_run "versioning bad state" 2 InvalidArgument --data-dir "$D" bucket versioning bk1 on

# ---- put / get / head ----
M put bk1 photos/a.jpg --size 10 --etag e1 --content-type image/jpeg --meta color=red \
    --meta owner=ann --storage-class STANDARD --json
[ "$RC" -eq 0 ] && ok || bad "put with all flags"
jtrue "put --json result" 'j.get("version_id")=="null"'
M get bk1 photos/a.jpg --json
jtrue "get --json record" 'j["bucket"]=="bk1" and j["key"]=="photos/a.jpg" and j["size"]==10 and j["etag"]=="e1" and j["content_type"]=="image/jpeg" and j["user_metadata"]=={"color":"red","owner":"ann"} and j["storage_class"]=="STANDARD" and j["is_delete_marker"]==False and j["version_id"]=="null" and j["mod_time_ns"]>1600000000000000000'
ok_run "get human" --data-dir "$D" get bk1 photos/a.jpg
has "get human etag" "etag:"
has "get human meta" "meta[color]:"
ok_run "head" --data-dir "$D" head bk1 photos/a.jpg --json
jtrue "head --json" 'j["size"]==10'
# flags after positionals, --flag=value, and global flags after the command
ok_run "put --flag=value" put bk1 photos/b.jpg --size=20 --data-dir="$D"
ok_run "put c" --data-dir "$D" put bk1 photos/2024/c.jpg --size 30
ok_run "put d" --data-dir "$D" put bk1 readme.txt --size 5
ok_run "put key starting with dash" --data-dir "$D" put bk1 -- -dash
err_run "put to missing bucket" 1 NoSuchBucket --data-dir "$D" put nope k
err_run "get missing key" 1 NoSuchKey --data-dir "$D" get bk1 nothing
err_run "get missing bucket" 1 NoSuchBucket --data-dir "$D" get nope k
long=$(head -c 1025 /dev/zero | tr '\0' k)
err_run "key too long" 1 KeyTooLongError --data-dir "$D" put bk1 "$long"
# A refused offline write leaves the data dir as it was: the seal a clean stop wrote stays and
# data.mdb is unchanged (a written engine makes a member refuse to start: engine_ahead_of_log).
unchanged() {
    if [ -f "$D/engine.seal" ] && cmp -s "$D/engine/data.mdb" "$T/data.mdb.before"; then
        ok
    else
        bad "$1 left the data dir changed (seal $([ -f "$D/engine.seal" ] && echo kept || echo removed))"
    fi
}
# Offline writes on a dir this CLI created keep it sealed (synced writes): the real seal is set
# aside for the stand-in and put back after.
[ -f "$D/engine.seal" ] && ok || bad "offline writes to a new dir left no engine.seal"
mv "$D/engine.seal" "$T/seal.real"
echo "stand-in seal" >"$D/engine.seal"
cp "$D/engine/data.mdb" "$T/data.mdb.before"
err_run "put key too long (sealed)" 1 KeyTooLongError --data-dir "$D" put bk1 "$long"
unchanged "a put with a bad key"
err_run "rm key too long (sealed)" 1 KeyTooLongError --data-dir "$D" rm bk1 "$long"
unchanged "an rm with a bad key"
err_run "rm bad version id (sealed)" 2 InvalidArgument --data-dir "$D" rm bk1 k --version-id "$long"
unchanged "an rm with a bad version id"
rm -f "$T/data.mdb.before"
mv "$T/seal.real" "$D/engine.seal"
# A write the engine rejects commits nothing (review 8b #4): the applied index stays (an index
# with no log entry behind it makes the member refuse to start: engine_ahead_of_log) and the
# data dir stays sealed as it was.
applied() { M check --json && python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["applied_index"])' "$OUT"; }
a0=$(applied)
cp "$D/engine.seal" "$T/seal.before"
err_run "rejected: bucket exists" 1 BucketAlreadyExists --data-dir "$D" bucket create bk1
err_run "rejected: put to a missing bucket" 1 NoSuchBucket --data-dir "$D" put nope k
err_run "rejected: if-none-match" 1 PreconditionFailed --data-dir "$D" put bk1 photos/a.jpg --if-none-match '*'
err_run "rejected: bucket rm missing" 1 NoSuchBucket --data-dir "$D" bucket rm nope
err_run "rejected: bucket rm non-empty" 1 BucketNotEmpty --data-dir "$D" bucket rm bk1
a1=$(applied)
[ -n "$a0" ] && [ "$a0" = "$a1" ] && ok || bad "rejected writes moved the applied index ($a0 -> $a1)"
cmp -s "$D/engine.seal" "$T/seal.before" && ok || bad "rejected writes changed or dropped the seal"
ok_run "an accepted write after them" --data-dir "$D" put bk1 after-rejected
a2=$(applied)
[ "$a2" = "$((a0 + 1))" ] && [ -f "$D/engine.seal" ] && ok || bad "accepted write: index $a0 -> $a2, sealed again"
ok_run "rm it" --data-dir "$D" rm bk1 after-rejected
big=$(head -c 2100 /dev/zero | tr '\0' v)
err_run "metadata too large" 1 MetadataTooLarge --data-dir "$D" put bk1 k --meta "x=$big"
err_run "bad --meta" 2 InvalidArgument --data-dir "$D" put bk1 k --meta novalue
err_run "bad --size" 2 InvalidArgument --data-dir "$D" put bk1 k --size -1
err_run "bad --size letters" 2 InvalidArgument --data-dir "$D" put bk1 k --size 12abc
err_run "if-none-match not *" 2 InvalidArgument --data-dir "$D" put bk1 k --if-none-match x
err_run "if-none-match on existing" 1 PreconditionFailed --data-dir "$D" put bk1 photos/a.jpg --if-none-match '*'
err_run "if-match wrong" 1 PreconditionFailed --data-dir "$D" put bk1 photos/a.jpg --if-match nope
ok_run "if-match right" --data-dir "$D" put bk1 photos/a.jpg --if-match e1 --etag e2 --size 11
ok_run "if-none-match on new key" --data-dir "$D" put bk1 fresh --if-none-match '*'
M get bk1 photos/a.jpg --json
jtrue "if-match put replaced" 'j["etag"]=="e2" and j["size"]==11'

# inline data: size and MD5 etag from the file; too big is refused with nothing written
printf 'hello inline' >"$T/small"
ok_run "put inline" --data-dir "$D" put bk1 inl --inline-file "$T/small"
M get bk1 inl --json
md5=$(md5sum "$T/small" | cut -d' ' -f1)
jtrue "inline size and md5 etag" "j['size']==12 and j['etag']=='$md5'"
head -c 70000 /dev/zero >"$T/big"
err_run "inline too large" 1 EntityTooLarge --data-dir "$D" put bk1 inl2 --inline-file "$T/big"
err_run "inline missing file" 1 IOError --data-dir "$D" put bk1 inl2 --inline-file "$T/none"
err_run "inline size mismatch" 2 InvalidArgument --data-dir "$D" put bk1 inl2 --inline-file "$T/small" --size 3
err_run "nothing written by refused puts" 1 NoSuchKey --data-dir "$D" get bk1 inl2

# ---- ls ----
M ls bk1 --json
jtrue "ls all" '[o["key"] for o in j["objects"]]==["-dash","fresh","inl","photos/2024/c.jpg","photos/a.jpg","photos/b.jpg","readme.txt"] and j["key_count"]==7 and j["is_truncated"]==False and j["common_prefixes"]==[]'
jtrue "ls object fields" 'all(set(["key","size","etag","version_id","mod_time_ns"])<=set(o) for o in j["objects"])'
M ls bk1 --prefix photos/ --delimiter / --json
jtrue "ls prefix+delimiter" '[o["key"] for o in j["objects"]]==["photos/a.jpg","photos/b.jpg"] and j["common_prefixes"]==["photos/2024/"] and j["key_count"]==3'
M ls bk1 --delimiter / --json
jtrue "ls delimiter rolls up" 'j["common_prefixes"]==["photos/"] and "readme.txt" in [o["key"] for o in j["objects"]]'
M ls bk1 --start-after photos/a.jpg --json
jtrue "ls start-after" '[o["key"] for o in j["objects"]]==["photos/b.jpg","readme.txt"]'
M ls bk1 --max-keys 3 --json
jtrue "ls page 1" 'j["key_count"]==3 and j["is_truncated"]==True and j["next_continuation_token"]'
tok=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["next_continuation_token"])' "$OUT")
M ls bk1 --max-keys 3 --continuation-token "$tok" --json
jtrue "ls page 2 continues" '[o["key"] for o in j["objects"]]==["photos/2024/c.jpg","photos/a.jpg","photos/b.jpg"]'
ok_run "ls human" --data-dir "$D" ls bk1 --delimiter /
has "ls human PRE" "PRE"
has "ls human header" "MODIFIED"
ok_run "ls human truncated" --data-dir "$D" ls bk1 --max-keys 1
has "ls human next token" "--continuation-token"
ok_run "ls --max-keys above 1000 clamps" --data-dir "$D" ls bk1 --max-keys 5000
err_run "ls --max-keys 0" 2 InvalidArgument --data-dir "$D" ls bk1 --max-keys 0
err_run "ls --max-keys abc" 2 InvalidArgument --data-dir "$D" ls bk1 --max-keys abc
err_run "ls bad token" 1 InvalidContinuationToken --data-dir "$D" ls bk1 --continuation-token '!!garbage!!'
err_run "ls missing bucket" 1 NoSuchBucket --data-dir "$D" ls nope

# ---- versions, delete markers ----
M put vbk doc --size 1 --json
v1=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
M put vbk doc --size 2 --json
v2=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
[ -n "$v1" ] && [ "$v1" != "$v2" ] && [ "$v1" != null ] && ok || bad "distinct version ids ($v1 $v2)"
# Offline ids are op times, as a leader's: a later write sorts after earlier ones even when the
# wall clock went back an hour meanwhile (the engine's op clock is the floor).
echo -3600 >"$D.clock"
MC_TEST_WALL_CLOCK_FILE="$D.clock" "$MC" --data-dir "$D" put vbk doc --size 3 --json >"$OUT" 2>/dev/null
v3=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
rm -f "$D.clock"
[[ "$v2" > "$v1" && "$v3" > "$v2" ]] && ok || bad "offline version ids in write order ($v1 $v2 $v3)"
M rm vbk doc --version-id "$v3" --json
M get vbk doc --version-id "$v1" --json
jtrue "get old version" 'j["size"]==1'
err_run "get missing version" 1 NoSuchVersion --data-dir "$D" get vbk doc --version-id nope
M rm vbk doc --json
jtrue "rm adds delete marker" 'j.get("delete_marker")==True'
dm=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
err_run "get after delete marker" 1 NoSuchKey --data-dir "$D" get vbk doc
grep -q "delete marker" "$ERR" && ok || bad "NoSuchKey names the delete marker"
M versions vbk --json
jtrue "versions --json" "[(v['key'],v['version_id'],v['is_latest'],v['is_delete_marker']) for v in j['versions']]==[('doc','$dm',True,True),('doc','$v2',False,False),('doc','$v1',False,False)] and j['is_truncated']==False"
M versions vbk --max-keys 1 --json
jtrue "versions page" "j['is_truncated']==True and j['next_key_marker']=='doc' and j['next_version_id_marker']=='$dm'"
M versions vbk --max-keys 1 --key-marker doc --version-id-marker "$dm" --json
jtrue "versions resume" "[v['version_id'] for v in j['versions']]==['$v2']"
err_run "version-id-marker alone" 2 InvalidArgument --data-dir "$D" versions vbk --version-id-marker x
ok_run "versions human" --data-dir "$D" versions vbk
has "versions human header" "VERSION_ID"
ok_run "rm the delete marker" --data-dir "$D" rm vbk doc --version-id "$dm"
M get vbk doc --json
jtrue "previous version restored" "j['version_id']=='$v2'"
ok_run "suspend versioning" --data-dir "$D" bucket versioning vbk suspended
M bucket head vbk --json
jtrue "suspended" 'j["versioning"]=="suspended"'
ok_run "rm missing key is idempotent" --data-dir "$D" rm bk1 never-existed

# ---- bucket rm ----
err_run "bucket rm non-empty" 1 BucketNotEmpty --data-dir "$D" bucket rm vbk
for v in "$v1" "$v2"; do M rm vbk doc --version-id "$v"; done
ok_run "bucket rm empty" --data-dir "$D" bucket rm vbk
err_run "bucket rm missing" 1 NoSuchBucket --data-dir "$D" bucket rm vbk

# ---- check, snapshot save / restore ----
M check --json
jtrue "check offline" 'j["applied_index"]>0 and len(j["state_hash"])==16'
h1=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["state_hash"])' "$OUT")
ok_run "snapshot save" --data-dir "$D" snapshot save "$T/snap.mdb"
[ -s "$T/snap.mdb" ] && [ ! -e "$T/snap.mdb.tmp" ] && ok || bad "snapshot file written"
# Offline save copies only a sealed engine (review 8b #3): without the seal a clean stop writes,
# data.mdb may hold stale pages (an unclean stop of an unsynced engine), and the export would
# stamp them with a checksum restore trusts.
mv "$D/engine.seal" "$T/seal.real"
err_run "snapshot save of an unsealed engine" 1 NotFound --data-dir "$D" snapshot save "$T/uns.snap"
grep -q "start the node once" "$ERR" && [ ! -e "$T/uns.snap" ] && ok ||
    bad "unsealed save: says what to do and writes nothing"
ok_run "offline write on an unsealed engine" --data-dir "$D" put bk1 unsealed-put
[ ! -e "$D/engine.seal" ] && ok || bad "an offline write sealed an engine from an unclean stop"
err_run "snapshot save still refused" 1 NotFound --data-dir "$D" snapshot save "$T/uns.snap"
sed 's/xxh3=./xxh3=0/' "$T/seal.real" >"$D/engine.seal"
cmp -s "$D/engine.seal" "$T/seal.real" && sed -i 's/xxh3=./xxh3=1/' "$D/engine.seal"
err_run "snapshot save with a seal that does not match" 1 Corruption --data-dir "$D" snapshot save "$T/uns.snap"
[ ! -e "$T/uns.snap" ] && ok || bad "mismatched seal: a snapshot was written"
rm -f "$D/engine.seal"
ok_run "snapshot restore" snapshot restore "$T/snap.mdb" --data-dir "$T/restored"
run --data-dir "$T/restored" check --json
jtrue "restored state hash equal" "j['state_hash']=='$h1'"
[ -f "$T/restored/METACENTER" ] && ok || bad "restored dir has the marker"
# The engine a restore writes is complete and synced: it is sealed, so an offline save of the
# never-started dir works and gives the same state (review 8c #2).
ok_run "snapshot save of a fresh restore" --data-dir "$T/restored" snapshot save "$T/resnap.mdb"
ok_run "restore of that save" snapshot restore "$T/resnap.mdb" --data-dir "$T/restored2"
run --data-dir "$T/restored2" check --json
jtrue "restore of a restore: state hash" "j['state_hash']!='' and j['applied_index']>0"
err_run "restore over existing" 1 AlreadyExists snapshot restore "$T/snap.mdb" --data-dir "$D"
# A dir with a leftover WAL and hard state but no engine/cluster file is node state too: the
# restored node would keep the old hard state and log (review 8c #1). Nothing in it changes.
mkdir -p "$T/left/wal" "$T/left/snap" "$T/left/engine"
echo "metacenter-datadir 1" >"$T/left/METACENTER"
echo "old log" >"$T/left/wal/wal-0000000000000001.log"
echo "old term" >"$T/left/meta-a"
cp "$T/left/meta-a" "$T/left/meta-b"
err_run "restore over a leftover WAL + hard state" 1 AlreadyExists snapshot restore "$T/snap.mdb" --data-dir "$T/left"
grep -q "meta-a\|meta-b\|wal" "$ERR" && [ ! -e "$T/left/cluster" ] && [ -z "$(ls -A "$T/left/engine")" ] &&
    grep -q "old term" "$T/left/meta-a" && ok || bad "leftover dir: names what it holds, left as it was"
rm "$T/left/meta-a" "$T/left/meta-b"
err_run "restore over a leftover WAL alone" 1 AlreadyExists snapshot restore "$T/snap.mdb" --data-dir "$T/left"
rm "$T/left/wal/wal-0000000000000001.log"
# An initialised dir with nothing in it (marker, empty subdirs) or an empty dir is fine.
ok_run "restore into an empty initialised dir" snapshot restore "$T/snap.mdb" --data-dir "$T/left"
mkdir "$T/empty"
ok_run "restore into an existing empty dir" snapshot restore "$T/snap.mdb" --data-dir "$T/empty"
# Restore holds DATADIR/LOCK while it writes: a running server's lock refuses it.
rm -f "$T/locked"
mkdir "$T/busy" # as a starting server leaves it: marker, lock held, nothing else yet
echo "metacenter-datadir 1" >"$T/busy/METACENTER"
python3 -c 'import fcntl,sys,time
f=open(sys.argv[1],"a"); fcntl.flock(f,fcntl.LOCK_EX); open(sys.argv[2],"w").close(); time.sleep(30)' \
    "$T/busy/LOCK" "$T/locked" &
LOCKPID=$!
for _ in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.05; done
err_run "restore into a locked dir" 1 DataDirLocked snapshot restore "$T/snap.mdb" --data-dir "$T/busy"
[ ! -e "$T/busy/cluster" ] && [ ! -e "$T/busy/engine/data.mdb" ] && ok || bad "locked restore wrote state"
kill "$LOCKPID" 2>/dev/null
wait "$LOCKPID" 2>/dev/null
LOCKPID=
rm -f "$T/locked"
head -c 8192 /dev/urandom >"$T/junk"
run snapshot restore "$T/junk" --data-dir "$T/r2"
[ "$RC" -eq 1 ] && [ ! -e "$T/r2/engine" ] && [ "$(wc -l <"$ERR")" -eq 1 ] && ok ||
    bad "restore of junk fails cleanly (exit $RC)"
err_run "restore without data-dir" 2 InvalidArgument snapshot restore "$T/snap.mdb"
err_run "cluster offline" 2 InvalidArgument --data-dir "$D" cluster status
err_run "cluster bad id" 2 InvalidArgument cluster remove abc

# ---- a data dir locked by a running process ----
# One process holds the engine's flock (as a running server does); python so that killing it
# really releases the lock (flock(1) would leave its child holding it).
python3 -c 'import fcntl,sys,time
f=open(sys.argv[1],"a"); fcntl.flock(f,fcntl.LOCK_EX); open(sys.argv[2],"w").close(); time.sleep(30)' \
    "$D/engine/LOCK" "$T/locked" &
LOCKPID=$!
for _ in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.05; done
err_run "locked data dir (read)" 1 DataDirLocked --data-dir "$D" bucket ls
err_run "locked data dir (write)" 1 DataDirLocked --data-dir "$D" bucket create bk9
kill "$LOCKPID" 2>/dev/null
wait "$LOCKPID" 2>/dev/null
LOCKPID=
err_run "locked write left nothing" 1 NoSuchBucket --data-dir "$D" bucket head bk9
# the node's own data-dir lock (DATADIR/LOCK, storage.h mc_datadir_lock) is honoured too
rm -f "$T/locked"
python3 -c 'import fcntl,sys,time
f=open(sys.argv[1],"a"); fcntl.flock(f,fcntl.LOCK_EX); open(sys.argv[2],"w").close(); time.sleep(30)' \
    "$D/LOCK" "$T/locked" &
LOCKPID=$!
for _ in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.05; done
err_run "DATADIR/LOCK held" 1 DataDirLocked --data-dir "$D" put bk1 zz
kill "$LOCKPID" 2>/dev/null
wait "$LOCKPID" 2>/dev/null
LOCKPID=
ok_run "lock released: works again" --data-dir "$D" bucket head bk1

# A write whose engine open fails (the engine held by another process) leaves a clean stop's
# seal in place: nothing changed, the node must not rebuild for it (review 8c #4).
ok_run "new sealed dir" --data-dir "$T/sealed" bucket create bk1
cp "$T/sealed/engine.seal" "$T/sealed.seal.before"
rm -f "$T/locked"
python3 -c 'import fcntl,sys,time
f=open(sys.argv[1],"a"); fcntl.flock(f,fcntl.LOCK_EX); open(sys.argv[2],"w").close(); time.sleep(30)' \
    "$T/sealed/engine/LOCK" "$T/locked" &
LOCKPID=$!
for _ in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.05; done
err_run "write with the engine locked" 1 DataDirLocked --data-dir "$T/sealed" put bk1 k
kill "$LOCKPID" 2>/dev/null
wait "$LOCKPID" 2>/dev/null
LOCKPID=
cmp -s "$T/sealed/engine.seal" "$T/sealed.seal.before" && ok || bad "failed open dropped the seal"
ok_run "sealed dir saves after the failed write" --data-dir "$T/sealed" snapshot save "$T/sealed.snap"
# A node dir whose engine was deleted (WAL and snapshots left) gets a new engine from an offline
# write, but no seal: the node's start must check that engine against its log (review 8c #3).
mkdir -p "$T/noeng/wal" "$T/noeng/snap"
echo "metacenter-datadir 1" >"$T/noeng/METACENTER"
echo "segment" >"$T/noeng/wal/wal-0000000000000001.log"
ok_run "write into a node dir without engine" --data-dir "$T/noeng" bucket create bk1
[ -f "$T/noeng/engine/data.mdb" ] && [ ! -e "$T/noeng/engine.seal" ] && ok ||
    bad "engine made inside a node dir with a WAL was sealed"
rm "$T/noeng/wal/wal-0000000000000001.log"
echo "snapshot" >"$T/noeng/snap/snap-0000000000000005-0000000000000001.snap"
rm -rf "$T/noeng/engine"
ok_run "write into a node dir with snapshots only" --data-dir "$T/noeng" bucket create bk1
[ ! -e "$T/noeng/engine.seal" ] && ok || bad "engine made next to snapshots was sealed"

# ---- server mode without a server: one clear line, exit 1 ----
run --endpoints 127.0.0.1:1 --timeout-ms 300 bucket ls
[ "$RC" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -qE '^[A-Za-z]+: ' "$ERR" && ok ||
    bad "unreachable server: one error line, exit 1 (exit $RC)"
err_run "bad --endpoints" 1 InvalidArgument --endpoints 'not an endpoint' bucket ls
err_run "bad --timeout-ms" 2 InvalidArgument --timeout-ms 0 bucket ls

# ---- server mode: the same commands through the client library against a test server (the
# client module's engine-backed harness) print the same shapes and errors ----
SRV=$(dirname "$MC")/cli_test_server
if [ -x "$SRV" ]; then
    mkfifo "$T/srv_in" "$T/fake_in"
    mkdir -p "$T/srv_engine"
    "$SRV" engine "$T/srv_engine" <"$T/srv_in" >"$T/srv_addr" 2>"$T/srv_log" &
    SRVPID=$!
    exec 7>"$T/srv_in" # the server exits when this suite (fd 7) goes away
    "$SRV" fake <"$T/fake_in" >"$T/fake_addr" 2>"$T/fake_log" &
    FAKEPID=$!
    exec 8>"$T/fake_in"
    for _ in $(seq 100); do [ -s "$T/srv_addr" ] && [ -s "$T/fake_addr" ] && break; sleep 0.05; done
    A=$(head -1 "$T/srv_addr")
    F=$(head -1 "$T/fake_addr")
    S() { run --endpoints "$A" "$@"; }
    S bucket create srv1 --json
    [ "$RC" -eq 0 ] && ok || bad "server: bucket create"
    err_run "server: bucket exists" 1 BucketAlreadyExists --endpoints "$A" bucket create srv1
    err_run "server: bad bucket name" 1 InvalidBucketName --endpoints "$A" bucket create X_Y
    ok_run "server: versioned bucket" --endpoints "$A" bucket create srvv --versioning
    S bucket ls --json
    jtrue "server: bucket ls --json" '[b["name"] for b in j["buckets"]]==["srv1","srvv"] and j["buckets"][1]["versioning"]=="enabled"'
    S bucket head srvv --json
    jtrue "server: bucket head" 'j["name"]=="srvv" and j["versioning"]=="enabled"'
    err_run "server: bucket head missing" 1 NoSuchBucket --endpoints "$A" bucket head nope
    S put srv1 a/x --size 3 --etag e1 --content-type text/plain --meta k=v --storage-class STANDARD --json
    jtrue "server: put" 'j.get("version_id")=="null"'
    S get srv1 a/x --json
    jtrue "server: get record" 'j["bucket"]=="srv1" and j["key"]=="a/x" and j["size"]==3 and j["etag"]=="e1" and j["content_type"]=="text/plain" and j["user_metadata"]=={"k":"v"} and j["storage_class"]=="STANDARD" and j["mod_time_ns"]>0'
    S head srv1 a/x --json
    jtrue "server: head" 'j["size"]==3'
    ok_run "server: put b" --endpoints "$A" put srv1 a/y --size 4
    ok_run "server: put c" --endpoints "$A" put srv1 top --inline-file "$T/small"
    err_run "server: if-none-match" 1 PreconditionFailed --endpoints "$A" put srv1 a/x --if-none-match '*'
    err_run "server: if-match" 1 PreconditionFailed --endpoints "$A" put srv1 a/x --if-match zz
    err_run "server: no such key" 1 NoSuchKey --endpoints "$A" get srv1 nope
    err_run "server: no such bucket" 1 NoSuchBucket --endpoints "$A" ls nope
    S ls srv1 --delimiter / --json
    jtrue "server: ls delimiter" 'j["common_prefixes"]==["a/"] and [o["key"] for o in j["objects"]]==["top"] and j["key_count"]==2'
    S ls srv1 --max-keys 1 --json
    jtrue "server: ls page" 'j["is_truncated"]==True and j["next_continuation_token"]'
    tok=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["next_continuation_token"])' "$OUT")
    S ls srv1 --max-keys 1 --continuation-token "$tok" --json
    jtrue "server: ls continues" '[o["key"] for o in j["objects"]]==["a/y"]'
    err_run "server: bad token" 1 InvalidContinuationToken --endpoints "$A" ls srv1 --continuation-token '!!x'
    S put srvv doc --size 1 --json
    sv1=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
    S rm srvv doc --json
    jtrue "server: rm adds marker" 'j.get("delete_marker")==True'
    sdm=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["version_id"])' "$OUT")
    err_run "server: get after marker" 1 NoSuchKey --endpoints "$A" get srvv doc
    grep -q "$sdm" "$ERR" && ok || bad "server: NoSuchKey names the marker version"
    S versions srvv --json
    jtrue "server: versions" "[(v['version_id'],v['is_latest'],v['is_delete_marker']) for v in j['versions']]==[('$sdm',True,True),('$sv1',False,False)]"
    ok_run "server: rm marker" --endpoints "$A" rm srvv doc --version-id "$sdm"
    ok_run "server: get restored" --endpoints "$A" get srvv doc
    err_run "server: bucket not empty" 1 BucketNotEmpty --endpoints "$A" bucket rm srvv
    ok_run "server: versioning suspended" --endpoints "$A" bucket versioning srvv suspended
    ok_run "server: stale read accepted" --endpoints "$A" --consistency stale --max-staleness-ms 1000 get srv1 a/x
    ok_run "server: human ls" --endpoints "$A" ls srv1
    has "server: human ls columns" "MODIFIED"
    # admin commands against the fake store's canned replies
    run --endpoints "$F" cluster status --json --timeout-ms 300
    jtrue "server: cluster status --json" 'j["leader"]==1 and j["term"]==3 and [m["id"] for m in j["members"]]==[1,2,3] and [m["role"] for m in j["members"]]==["leader","follower","learner"] and all(set(["id","address","role","term","commit_index","applied_index","lag_entries","reachable"])<=set(m) for m in j["members"])'
    run --endpoints "$F" cluster status --timeout-ms 300
    has "server: cluster status human" "leader 1, term 3"
    ok_run "server: cluster add" --endpoints "$F" cluster add 4 127.0.0.1:9999 --learner
    ok_run "server: cluster promote" --endpoints "$F" cluster promote 4
    ok_run "server: cluster transfer-leader" --endpoints "$F" cluster transfer-leader 2
    ok_run "server: cluster remove" --endpoints "$F" cluster remove 4
    err_run "server: cluster add bad addr" 2 InvalidArgument --endpoints "$F" cluster add 4 nowhere
    # The fake store streams 3000 bytes that match its checksum but are no snapshot file: the
    # on-disk check refuses them, nothing is kept as a backup (review 8c #5; the real server's
    # stream is saved and verified in test/integration/test_backup.py).
    err_run "server: snapshot save of a non-snapshot stream" 1 Corruption --endpoints "$F" snapshot save "$T/srv.snap"
    grep -q "not a snapshot file" "$ERR" && [ ! -e "$T/srv.snap" ] && [ ! -e "$T/srv.snap.tmp" ] && ok ||
        bad "server: a non-snapshot stream was written as a backup"
    # The fake answers the first try Busy carrying min index 77: the retry sends it back.
    grep -q "fake: snapshot save min_index=0" "$T/fake_log" &&
        grep -q "fake: snapshot save min_index=77" "$T/fake_log" && ok ||
        bad "server: snapshot save retry did not send back the min index its Busy carried"
    exec 7>&- 8>&-
    wait "$SRVPID" "$FAKEPID" 2>/dev/null
else
    bad "no $SRV (build it with make)"
fi

echo "-- cli suite took $(($(date +%s) - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
