#!/usr/bin/env bash
# with-rgw.sh DIR CMD [ARGS...]: runs CMD with the RGW started by `ceph.sh start DIR` (the ctest
# fixture) in its environment, or exits 77 (ctest: skipped) when there is none.
# Exports what the s3 tests read:
#   S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION   (from DIR/env)
#   RFS_S3_ENDPOINT       for tests/unit/test_s3_live.c
#   ROAMFS_TEST_S3_URL    for tests/integration/lib.sh with ROAMFS_TEST_STORE=s3
set -euo pipefail
dir=$1; shift
if [ ! -f "$dir/env" ]; then
  echo "SKIP: no RGW in $dir (s3_rgw_start skipped or failed; ROAMFS_TEST_S3=0?)" >&2
  exit 77
fi
# shellcheck disable=SC1091
. "$dir/env"
export RFS_S3_ENDPOINT=$S3_ENDPOINT
export ROAMFS_TEST_S3_URL="s3://roamfs-integ/ci?endpoint=$S3_ENDPOINT&region=${AWS_REGION:-us-east-1}&provider=ceph&create_bucket=1"
exec "$@"
