# The replication log store (logstore*.c). Until replication/CMakeLists.txt
# exists it is built here on its own as meridian_logstore; once the replication
# library exists (it globs replication/*.c, these files included) this only
# points LOGSTORE_LIB at it. Included by the log store's tests and by server/.
if(TARGET meridian_replication)
  set(LOGSTORE_LIB meridian_replication)
else()
  if(NOT TARGET meridian_logstore)
    meridian_library(meridian_logstore
      SOURCES ${PROJECT_SOURCE_DIR}/replication/logstore.c
              ${PROJECT_SOURCE_DIR}/replication/logstore_format.c
              ${PROJECT_SOURCE_DIR}/replication/logstore_index.c
              ${PROJECT_SOURCE_DIR}/replication/logstore_io.c
      DEPS meridian_common Threads::Threads)
  endif()
  set(LOGSTORE_LIB meridian_logstore)
endif()
