# Helpers shared by every module's CMakeLists.txt.

# berth_module(NAME SOURCES... [DEPS ...]): static library berth_NAME with public headers in include/.
function(berth_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(berth_${name} STATIC ${ARG_SOURCES})
  target_include_directories(berth_${name} PUBLIC ${CMAKE_SOURCE_DIR}/include PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(berth_${name} PUBLIC ${ARG_DEPS} PRIVATE berth_warnings)
endfunction()

# berth_test(NAME SOURCES... DEPS ... [LABELS ...]): a GoogleTest binary registered with CTest.
function(berth_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main berth_warnings)
  if("unit" IN_LIST ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY BERTH_UNIT_TESTS ${name})
  endif()
  if("component" IN_LIST ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY BERTH_COMPONENT_TESTS ${name})
  endif()
  include(GoogleTest)
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 30)
endfunction()

# Reuse the one Asio/Beast precompiled header (src/asio_impl) in a target that includes them.
function(berth_use_pch target)
  target_precompile_headers(${target} REUSE_FROM berth_pch)
  target_link_libraries(${target} PUBLIC berth_asio)
endfunction()
