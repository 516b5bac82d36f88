// SPDX-License-Identifier: Apache-2.0
#pragma once

// Checks of FHIR date and dateTime text in source values.

#include <string_view>

namespace fhir::mappers {

// Calendar date YYYY-MM-DD with a real month and day.
bool isDate(std::string_view text);
// FHIR dateTime with a time: YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm). The offset is required.
bool isDateTimeWithOffset(std::string_view text);

}  // namespace fhir::mappers
