// SPDX-License-Identifier: Apache-2.0
#include "gateway/delivery/delivery.h"

#include <gtest/gtest.h>

namespace fhir::gateway {
namespace {

TEST(SignatureTest, MatchesRfc4231TestCase2) {
  // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace fhir::gateway
