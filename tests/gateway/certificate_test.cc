// SPDX-License-Identifier: Apache-2.0
// auth::certificateMatches: a client's `certificateSubject` against the subject the listener
// read from a verified TLS client certificate (OpenSSL's RFC 2253/4514 text).
#include "gateway/auth/certificate.h"

#include <gtest/gtest.h>

namespace fhir::gateway::auth {
namespace {

AuthClient clientWithSubject(const std::string& subject) {
  AuthClient client;
  client.id = "clinic";
  client.certificate_subject = subject;
  return client;
}

TEST(CertificateTest, AClientWithoutASubjectIsNotBound) {
  EXPECT_TRUE(certificateMatches(clientWithSubject(""), ""));
  EXPECT_TRUE(certificateMatches(clientWithSubject(""), "CN=anyone"));
}

TEST(CertificateTest, TheSameNameMatchesWhateverItsSpellingOrOrder) {
  const AuthClient client = clientWithSubject("O = Example Clinic, CN = clinic.example.org");  // openssl x509 -subject
  EXPECT_TRUE(certificateMatches(client, "CN=clinic.example.org,O=Example Clinic"));          // RFC 4514, as read
  EXPECT_TRUE(certificateMatches(client, "cn=clinic.example.org, o=Example Clinic"));
  EXPECT_TRUE(certificateMatches(clientWithSubject("CN=a\\,b,O=x"), "O=x,CN=a\\,b"));
}

TEST(CertificateTest, AnyOtherNameOrNoCertificateDoesNot) {
  const AuthClient client = clientWithSubject("CN=clinic.example.org,O=Example Clinic");
  EXPECT_FALSE(certificateMatches(client, ""));
  EXPECT_FALSE(certificateMatches(client, "CN=impostor.example.org,O=Example Clinic"));
  EXPECT_FALSE(certificateMatches(client, "CN=clinic.example.org"));                          // an RDN missing
  EXPECT_FALSE(certificateMatches(client, "CN=clinic.example.org,O=Example Clinic,OU=Extra")); // one more
  EXPECT_FALSE(certificateMatches(client, "CN=Clinic.example.org,O=Example Clinic"));         // values are exact
  EXPECT_FALSE(certificateMatches(client, "CN=clinic.example.org\\,O=Example Clinic"));       // escaped: one value
  EXPECT_FALSE(certificateMatches(clientWithSubject("not a name"), "not a name"));            // malformed never matches
}

TEST(CertificateTest, NormalizedSubjectSortsTypedPairs) {
  const auto pairs = normalizedSubject(" CN = a , o=b+OU=c ");
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0], (std::pair<std::string, std::string>{"CN", "a"}));
  EXPECT_EQ(pairs[1], (std::pair<std::string, std::string>{"O", "b"}));
  EXPECT_EQ(pairs[2], (std::pair<std::string, std::string>{"OU", "c"}));
  EXPECT_TRUE(normalizedSubject("").empty());
  EXPECT_TRUE(normalizedSubject("CN").empty());
}

}  // namespace
}  // namespace fhir::gateway::auth
