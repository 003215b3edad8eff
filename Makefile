# zksync: PostgreSQL extension, built with PGXS.
MODULE_big = zksync
OBJS = src/zksync.o src/settings.o src/shared.o src/names.o src/layout.o src/transport.o src/session.o src/releases.o src/held.o src/watchdog.o src/nodes.o src/tree.o src/queue.o src/waits.o src/gates.o src/deadlock.o src/marks.o src/lock.o src/locktable.o src/semaphore.o src/barrier.o src/xact.o src/handoff.o

EXTENSION = zksync
DATA = zksync--1.0.sql zksync--1.1.sql zksync--1.0--1.1.sql

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# warnings are errors only when asked: make WERROR=1 (CI, scripts/test.sh,
# scripts/soak.sh and bench/run.sh build that way)
ifeq ($(WERROR),1)
PG_CPPFLAGS += -Werror
endif
SHLIB_LINK = -lzookeeper_mt -lpthread

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=zksync
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=zksync
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
