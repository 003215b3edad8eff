# zksync: PostgreSQL extension, built with PGXS.
MODULE_big = zksync
OBJS = src/zksync.o src/settings.o src/shared.o src/names.o src/layout.o src/transport.o src/clientio.o src/session.o src/releases.o src/held.o src/watchdog.o src/nodes.o src/tree.o src/queue.o src/waits.o src/gates.o src/deadlock.o src/marks.o src/lock.o src/locktable.o src/semaphore.o src/barrier.o src/xact.o src/handoff.o

EXTENSION = zksync
DATA = zksync--1.0.sql zksync--1.1.sql zksync--1.0--1.1.sql

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# warnings are errors only when asked: make WERROR=1 (CI, scripts/test.sh,
# scripts/soak.sh and bench/run.sh build that way)
ifeq ($(WERROR),1)
PG_CPPFLAGS += -Werror
endif
SHLIB_LINK = -lzookeeper_st -lpthread

# make installcheck runs, against any server, the tests that need no
# ZooKeeper ensemble: bad input, settings, privileges and the upgrade path.
# They pass with or without shared_preload_libraries and whatever
# zksync.hosts says, as a packager's pg_buildext installcheck needs.  Every
# other test (pg_regress, isolation and TAP) needs the ensemble the server's
# zksync.hosts names; they run too when ZK_HOSTS names it, as
# scripts/test.sh does (scripts/bootstrap.sh exports it):
#   make installcheck ZK_HOSTS=127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183
REGRESS_NO_ENSEMBLE = bad_input gucs privileges upgrade
ifeq ($(strip $(ZK_HOSTS)),)
REGRESS = $(REGRESS_NO_ENSEMBLE)
else
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
TAP_TESTS = 1
endif
REGRESS_OPTS = --load-extension=zksync
ISOLATION_OPTS = --load-extension=zksync

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# make dist: the PGXN archive of the committed tree (HEAD, not the working
# copy), zksync-X.Y.Z.zip with every file under zksync-X.Y.Z/, X.Y.Z the
# version in META.json.  DISTFILE names another place for it.
DISTVERSION = $(shell sed -n 's/^  "version": "\([^"]*\)",$$/\1/p' $(srcdir)/META.json)
DISTFILE = $(EXTENSION)-$(DISTVERSION).zip
.PHONY: dist
dist:
	git -C $(srcdir) archive --format=zip --prefix=$(EXTENSION)-$(DISTVERSION)/ -o $(abspath $(DISTFILE)) HEAD
