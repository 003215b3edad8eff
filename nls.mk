# zksync's messages for translation (PGXS includes this file when
# PostgreSQL is built with NLS).  `make init-po` writes po/zksync.pot;
# a translation is po/LANG.po, listed in AVAIL_LANGUAGES.
CATALOG_NAME     = zksync
AVAIL_LANGUAGES  =
GETTEXT_FILES    = $(wildcard src/*.c)
GETTEXT_TRIGGERS = $(BACKEND_COMMON_GETTEXT_TRIGGERS) \
    GUC_check_errmsg GUC_check_errdetail GUC_check_errhint
GETTEXT_FLAGS    = $(BACKEND_COMMON_GETTEXT_FLAGS) \
    GUC_check_errmsg:1:c-format GUC_check_errdetail:1:c-format \
    GUC_check_errhint:1:c-format
