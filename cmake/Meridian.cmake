# Shared build settings and helpers for Meridian's layers and tests.

add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
                    -Wno-unused-parameter -fno-strict-aliasing)
if(MERIDIAN_WERROR)
  add_compile_options(-Werror)
endif()
add_compile_definitions(_GNU_SOURCE)

if(MERIDIAN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(MERIDIAN_SANITIZE=1)
endif()

if(MERIDIAN_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MERIDIAN_FUZZ needs clang: CC=clang cmake -DMERIDIAN_FUZZ=ON ...")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# meridian_library(NAME SOURCES... [DEPS ...]): one static library per layer,
# its folder's parent on the include path so code says #include "common/buf.h".
function(meridian_library name)
  cmake_parse_arguments(ML "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ML_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ML_DEPS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY MERIDIAN_LIBRARIES ${name})
endfunction()

# meridian_test(NAME SOURCES... DEPS... [LABELS ...] [TIMEOUT s]): a cmocka test
# registered with ctest.
function(meridian_test name)
  cmake_parse_arguments(MT "" "TIMEOUT" "SOURCES;DEPS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${MT_SOURCES})
  target_link_libraries(${name} PRIVATE ${MT_DEPS} PkgConfig::CMOCKA)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  add_test(NAME ${name} COMMAND ${name} ${MT_ARGS})
  if(NOT MT_TIMEOUT)
    set(MT_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${MT_TIMEOUT})
  if(MT_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${MT_LABELS}")
  endif()
endfunction()

# meridian_fuzzer(NAME SOURCES... DEPS...): a libFuzzer target (MERIDIAN_FUZZ=ON).
function(meridian_fuzzer name)
  if(NOT MERIDIAN_FUZZ)
    return()
  endif()
  cmake_parse_arguments(MF "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${MF_SOURCES})
  target_link_libraries(${name} PRIVATE ${MF_DEPS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()

# Adds every immediate subfolder of the current folder that has a CMakeLists.txt,
# so a new test suite or module needs no edit of its parent.
macro(meridian_add_subdirs)
  file(GLOB _meridian_children LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT _meridian_children)
  foreach(_child ${_meridian_children})
    if(IS_DIRECTORY ${_child} AND EXISTS ${_child}/CMakeLists.txt)
      add_subdirectory(${_child})
    endif()
  endforeach()
endmacro()
