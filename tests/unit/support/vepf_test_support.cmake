# Header-only test fixtures of tests/unit/support (LinkWindows, RingPair, fake links, a fake
# virtio device). Included by each unit-test folder that uses them; defines the target once.
if(NOT TARGET vepf_test_support)
  add_library(vepf_test_support INTERFACE)
  # Includes are spelled "support/<header>.hpp".
  target_include_directories(vepf_test_support INTERFACE ${CMAKE_CURRENT_LIST_DIR}/..)
  target_link_libraries(vepf_test_support INTERFACE vepf_layout GTest::gtest)
  # The strict link model, on in every test program that links this (support/strict_link.cc).
  target_sources(vepf_test_support INTERFACE ${CMAKE_CURRENT_LIST_DIR}/strict_link.cc)
endif()
