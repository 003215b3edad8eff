# zksync: PostgreSQL extension, built with PGXS.
MODULE_big = zksync
OBJS = src/zksync.o src/names.o src/connection.o src/nodes.o src/lock.o src/barrier.o src/xact.o src/handoff.o

EXTENSION = zksync
DATA = zksync--1.0.sql

PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = -lzookeeper_mt -lpthread

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=zksync
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=zksync
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
