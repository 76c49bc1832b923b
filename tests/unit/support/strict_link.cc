// Every unit test program runs with the strict link model (LAYOUT.md §7): an access to a link
// window that real device memory would fault on fails the running test, whatever the window's
// memory is here. Linked into every unit-test program through vepf_test_support.
#include <gtest/gtest.h>

#include "vepf/ring/access.hpp"

namespace {

void fail_the_test(const vepf::ring::LinkViolation& v) { ADD_FAILURE() << vepf::ring::describe(v); }

// Before main(): on for every test of the program.
const bool kStrict = (vepf::ring::set_strict_link(&fail_the_test), true);

}  // namespace
