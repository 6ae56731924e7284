#!/bin/bash
# Creates the user mongot syncs with. FOR LOCAL DEVELOPMENT ONLY.
#
# Mounted into /docker-entrypoint-initdb.d/ of the mongod container. The
# mongodb/mongodb-community-server entrypoint runs it ONCE, on the first start with an empty data
# volume, against its temporary standalone mongod on 127.0.0.1:27017 (no auth, no replica set yet).
# To re-run it (e.g. after changing the password), reset the data: `docker compose down -v`.
#
# The password is read from the same file mongot uses (deploy/pwfile, mounted read-only at
# /etc/mongot-pwfile), so the two cannot drift apart. The file must not end with a newline.
set -euo pipefail

MONGOT_USER=mongotUser
PWFILE=/etc/mongot-pwfile

if [ ! -s "$PWFILE" ]; then
  echo "init-mongo.sh: password file $PWFILE is missing or empty" >&2
  exit 1
fi

echo "init-mongo.sh: creating user ${MONGOT_USER} (role searchCoordinator)"
MONGOT_USER="$MONGOT_USER" MONGOT_PASSWORD="$(cat "$PWFILE")" \
  mongosh --quiet --host 127.0.0.1 --port 27017 admin --eval '
    const user = process.env.MONGOT_USER;
    const pwd = process.env.MONGOT_PASSWORD;
    const roles = [{ role: "searchCoordinator", db: "admin" }];
    if (db.getUser(user) === null) {
      db.createUser({ user: user, pwd: pwd, roles: roles });
      print("created user " + user);
    } else {
      db.updateUser(user, { pwd: pwd, roles: roles });
      print("updated user " + user);
    }
  '
