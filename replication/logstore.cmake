# The replication log store (logstore*.c), built on its own until
# replication/CMakeLists.txt exists; included (guarded) by its tests and by
# server/. At merge this folds into the replication library.
if(NOT TARGET meridian_logstore)
  meridian_library(meridian_logstore
    SOURCES ${PROJECT_SOURCE_DIR}/replication/logstore.c
            ${PROJECT_SOURCE_DIR}/replication/logstore_format.c
            ${PROJECT_SOURCE_DIR}/replication/logstore_index.c
            ${PROJECT_SOURCE_DIR}/replication/logstore_io.c
    DEPS meridian_common Threads::Threads)
endif()
