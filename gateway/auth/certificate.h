// SPDX-License-Identifier: Apache-2.0
#pragma once

// The binding of a client to its TLS client certificate (contracts/access.md "Clients":
// `certificateSubject`, checked when `tls.clientCaFile` is set). The listener verifies the
// certificate against the CAs and hands its subject to the request (http::Request::peer_subject);
// this says whether that subject is the client's.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/auth/auth_config.h"

namespace fhir::gateway::auth {

// True when `client` has no `certificateSubject`, or when `peer_subject` (RFC 4514, as the
// listener gives it) names the same distinguished name: the same attribute=value pairs,
// attribute types compared without case, spaces around ',', '+' and '=' ignored, values exact.
// The order of the RDNs does not matter, so "CN=clinic,O=Example" (RFC 4514 order) and
// "O=Example, CN=clinic" (as `openssl x509 -subject` prints it) are one name. An empty
// `peer_subject` (no certificate) never matches a configured subject.
bool certificateMatches(const AuthClient& client, std::string_view peer_subject);

// A distinguished name as sorted (upper-cased type, value) pairs, as certificateMatches compares
// them; escaped separators ("\,") stay inside their value. Empty for an empty or malformed name.
std::vector<std::pair<std::string, std::string>> normalizedSubject(std::string_view subject);

}  // namespace fhir::gateway::auth
