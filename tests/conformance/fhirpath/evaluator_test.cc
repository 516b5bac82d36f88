// SPDX-License-Identifier: Apache-2.0
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/fhirpath/fhirpath.h"
#include "gateway_paths.h"

namespace fhir::fhirpath {
namespace {

constexpr const char* kPatient = R"({
  "resourceType": "Patient",
  "id": "p1",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                 "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "active": true,
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"],
            "_given": [null, {"id": "g2", "extension": [{"url": "http://example.org/x", "valueString": "ext"}]}]},
           {"use": "nickname", "_given": [{"id": "only-extension"}]}],
  "contained": [{"resourceType": "Organization", "id": "org1", "name": "Contained Org"}],
  "managingOrganization": {"reference": "#org1"},
  "generalPractitioner": [{"reference": "Practitioner/pr1"}]
})";

constexpr const char* kObservation = R"({
  "resourceType": "Observation",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
  "valueQuantity": {"value": 185.50, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "[lb_av]"},
  "effectiveDateTime": "2016-03-28"
})";

constexpr const char* kBundle = R"({
  "resourceType": "Bundle",
  "type": "collection",
  "entry": [
    {"fullUrl": "http://example.org/fhir/Patient/a", "resource": {"resourceType": "Patient", "id": "a",
      "managingOrganization": {"reference": "Organization/o"}}},
    {"fullUrl": "http://example.org/fhir/Organization/o", "resource": {"resourceType": "Organization", "id": "o", "name": "Bundled Org"}}
  ]
})";

class FhirpathEvaluator : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.model = Model::bundled();
    ASSERT_TRUE(json::parse(kPatient, patient_, error_));
    ASSERT_TRUE(json::parse(kObservation, observation_, error_));
    ASSERT_TRUE(json::parse(kBundle, bundle_, error_));
  }

  std::string eval(std::string_view text, const json::Value& resource) {
    auto compiled = compile(text);
    if (!compiled.ok()) return "compile error: " + compiled.message();
    auto result = evaluate(**compiled, resource, context_);
    if (!result.ok()) return "error: " + result.message();
    return toJson(*result);
  }
  std::string eval(std::string_view text) { return eval(text, patient_); }

  json::Document patient_, observation_, bundle_;
  json::ParseError error_;
  EvaluationContext context_;
};

TEST_F(FhirpathEvaluator, ThreeValuedLogic) {
  // Truth tables of the spec, with {} as unknown.
  EXPECT_EQ(eval("true and {}"), "[]");
  EXPECT_EQ(eval("false and {}"), "[false]");
  EXPECT_EQ(eval("{} and {}"), "[]");
  EXPECT_EQ(eval("true or {}"), "[true]");
  EXPECT_EQ(eval("false or {}"), "[]");
  EXPECT_EQ(eval("{} xor true"), "[]");
  EXPECT_EQ(eval("true xor false"), "[true]");
  EXPECT_EQ(eval("false implies {}"), "[true]");
  EXPECT_EQ(eval("{} implies true"), "[true]");
  EXPECT_EQ(eval("{} implies false"), "[]");
  EXPECT_EQ(eval("true implies {}"), "[]");
  EXPECT_EQ(eval("{}.not()"), "[]");
  EXPECT_EQ(eval("(true and false).not()"), "[true]");
  // Comparisons with empty are empty, not false.
  EXPECT_EQ(eval("deceased = true"), "[]");
  EXPECT_EQ(eval("(1 | 2) = (1 | 2)"), "[true]");
  EXPECT_EQ(eval("{} ~ {}"), "[true]");
}

TEST_F(FhirpathEvaluator, EvaluateBooleanForInvariants) {
  auto check = [&](std::string_view text) -> Result<std::optional<bool>> {
    auto compiled = compile(text);
    EXPECT_TRUE(compiled.ok());
    Item focus = Item::node(&patient_, "Patient");
    return evaluateBoolean(**compiled, focus, context_);
  };
  auto yes = check("name.exists() and birthDate < @2000");
  ASSERT_TRUE(yes.ok());
  EXPECT_EQ(*yes, std::optional<bool>(true));
  auto no = check("active.not()");
  ASSERT_TRUE(no.ok());
  EXPECT_EQ(*no, std::optional<bool>(false));
  auto unknown = check("deceased");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(*unknown, std::nullopt);
  auto too_many = check("name.given");
  EXPECT_FALSE(too_many.ok());
}

TEST_F(FhirpathEvaluator, PrimitiveExtensionsAreOneElement) {
  EXPECT_EQ(eval("birthDate"), R"(["1974-12-25"])");
  EXPECT_EQ(eval("birthDate.extension.url"),
            R"(["http://hl7.org/fhir/StructureDefinition/patient-birthTime"])");
  EXPECT_EQ(eval("birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value"),
            R"(["1974-12-25T14:35:45-05:00"])");
  // Arrays align by index with null placeholders: given[1] carries _given[1].
  EXPECT_EQ(eval("name[0].given[1].id"), R"(["g2"])");
  EXPECT_EQ(eval("name[0].given[0].id"), "[]");
  EXPECT_EQ(eval("name[0].given[1].extension.value"), R"(["ext"])");
  // An element that only has its `_x` side exists, but has no value.
  EXPECT_EQ(eval("name[1].given.count()"), "[1]");
  EXPECT_EQ(eval("name[1].given.id"), R"(["only-extension"])");
  EXPECT_EQ(eval("name[1].given.hasValue()"), "[false]");
  EXPECT_EQ(eval("name[0].given.first().hasValue()"), "[true]");
  EXPECT_EQ(eval("name[1].given"), "[null]");
}

TEST_F(FhirpathEvaluator, ValuelessPrimitivesActAsEmptyInFunctions) {
  // name[1].given has only `_given`: string functions see no value instead of failing.
  EXPECT_EQ(eval("name[1].given.upper()"), "[]");
  EXPECT_EQ(eval("name[1].given.length()"), "[]");
  EXPECT_EQ(eval("name[1].given & 'x'"), R"(["x"])");
  EXPECT_EQ(eval("(name[0].given | name[1].given).join(',')"), R"(["Peter,James"])");
  // Two value-less elements are equal only when their extensions are.
  EXPECT_EQ(eval("name[1].given = name[1].given"), "[true]");
  EXPECT_EQ(eval("name[1].given = name[0].given[1]"), "[false]");
}

TEST_F(FhirpathEvaluator, LenientNavigation) {
  EXPECT_EQ(eval("contained.where(resourceType = 'Organization').id"), R"(["org1"])");
  json::Document custom;
  ASSERT_TRUE(json::parse(R"({"resourceType":"Patient","customField":"x"})", custom, error_));
  EXPECT_EQ(eval("customField", custom), R"(["x"])");
  context_.strict = true;
  EXPECT_EQ(eval("customField", custom).rfind("error:", 0), 0u);
}

TEST_F(FhirpathEvaluator, QuantityArithmetic) {
  EXPECT_EQ(eval("2 * 5 'kg' = 10 'kg'"), "[true]");
  EXPECT_EQ(eval("1.1 'kg'.ceiling() = 2 'kg'"), "[true]");
  EXPECT_EQ(eval("2.315 's'.round(2) = 2.32 's'"), "[true]");
  EXPECT_EQ(eval("'1 \\'cm\\''.toQuantity('mm').value = 10"), "[true]");
  EXPECT_EQ(eval("2 '1' > 1"), "[true]");
  EXPECT_EQ(eval("1 year > 1 'a'"), "[]");
  EXPECT_EQ(eval("1 'kg' > 1 'm'"), "[]");
}

// UCUM temperatures have offsets: 0 Cel is 273.15 K and 32 [degF]; 100 Cel is 212 [degF].
TEST_F(FhirpathEvaluator, TemperatureQuantitiesConvertWithOffsets) {
  EXPECT_EQ(eval("0 'Cel' = 32 '[degF]'"), "[true]");
  EXPECT_EQ(eval("100 'Cel' = 212 '[degF]'"), "[true]");
  EXPECT_EQ(eval("1 'Cel' = 33.8 '[degF]'"), "[true]");
  EXPECT_EQ(eval("0 'Cel' = 273.15 'K'"), "[true]");
  EXPECT_EQ(eval("-40 'Cel' = -40 '[degF]'"), "[true]");
  EXPECT_EQ(eval("37 'Cel' > 98 '[degF]'"), "[true]");   // 98.6 degF
  EXPECT_EQ(eval("37 'Cel' < 99 '[degF]'"), "[true]");
  EXPECT_EQ(eval("36.6 'Cel' ~ 97.9 '[degF]'"), "[true]");  // 97.88 at the lesser precision
  EXPECT_EQ(eval("1 'Cel' = 1 '[degF]'"), "[false]");
  EXPECT_EQ(eval("1 'Cel' > 1 'kg'"), "[]");
  EXPECT_EQ(eval("'100 \\'Cel\\''.toQuantity('[degF]').value = 212"), "[true]");
  EXPECT_EQ(eval("'212 \\'[degF]\\''.toQuantity('Cel').value = 100"), "[true]");
}

TEST_F(FhirpathEvaluator, ChoiceTypes) {
  EXPECT_EQ(eval("value.value", observation_), "[185.50]");
  EXPECT_EQ(eval("value is Quantity", observation_), "[true]");
  EXPECT_EQ(eval("value.ofType(Quantity).code", observation_), R"(["[lb_av]"])");
  EXPECT_EQ(eval("value.ofType(string)", observation_), "[]");
  EXPECT_EQ(eval("(value as Quantity).unit", observation_), R"(["lb"])");
  EXPECT_EQ(eval("effective.is(dateTime)", observation_), "[true]");
  EXPECT_EQ(eval("effective > @2016-01-01", observation_), "[true]");
  // UCUM-aware comparison: 185.5 lb is about 84.1 kg.
  EXPECT_EQ(eval("value > 80 'kg' and value < 85 'kg'", observation_), "[true]");
  // Full choice names are accepted outside strict mode and rejected in it.
  EXPECT_EQ(eval("valueQuantity.value", observation_), "[185.50]");
  context_.strict = true;
  EXPECT_EQ(eval("valueQuantity.value", observation_).rfind("error:", 0), 0u);
  EXPECT_EQ(eval("Observation.foo", observation_).rfind("error:", 0), 0u);
  EXPECT_EQ(eval("value.value", observation_), "[185.50]");
}

TEST_F(FhirpathEvaluator, SemanticChecksOnRequest) {
  EXPECT_EQ(eval("children().skip(1).count() > 0"), "[true]");
  context_.check_ordered_functions = true;
  EXPECT_EQ(eval("children().skip(1)").rfind("error:", 0), 0u);
  EXPECT_EQ(eval("descendants()[0]").rfind("error:", 0), 0u);
  EXPECT_EQ(eval("children().where(true).first().exists()"), "[true]");
  context_.check_ordered_functions = false;
  EXPECT_EQ(eval("(value as Period).unit", observation_), "[]");
  context_.strict = true;
  EXPECT_EQ(eval("(value as Period).unit", observation_).rfind("error:", 0), 0u);
  EXPECT_EQ(eval("value.ofType(Period).unit", observation_).rfind("error:", 0), 0u);
  EXPECT_EQ(eval("(value as Period).start", observation_), "[]");
}

TEST_F(FhirpathEvaluator, ResolveWithinContainedAndBundle) {
  EXPECT_EQ(eval("managingOrganization.resolve().name"), R"(["Contained Org"])");
  EXPECT_EQ(eval("managingOrganization.resolve() is Organization"), "[true]");
  // Not in the resource: the hook answers, and without a hook the result is empty.
  EXPECT_EQ(eval("generalPractitioner.resolve()"), "[]");
  json::Document practitioner;
  ASSERT_TRUE(json::parse(R"({"resourceType":"Practitioner","id":"pr1","active":true})", practitioner,
                          error_));
  context_.resolve = [&](std::string_view reference) -> std::optional<Item> {
    if (reference != "Practitioner/pr1") return std::nullopt;
    return Item::node(&practitioner, "Practitioner");
  };
  EXPECT_EQ(eval("generalPractitioner.resolve().active"), "[true]");
  // Inside a Bundle, references resolve against the entries (%rootResource).
  EXPECT_EQ(eval("entry[0].resource.managingOrganization.resolve().name", bundle_),
            R"(["Bundled Org"])");
  EXPECT_EQ(eval("'http://example.org/fhir/Patient/a'.resolve().id", bundle_), R"(["a"])");
}

TEST_F(FhirpathEvaluator, TerminologyAndConformanceHooks) {
  EXPECT_EQ(eval("code.coding.memberOf('http://example.org/vs')", observation_), "[]");
  context_.member_of = [](std::string_view url, const Item& coded) -> std::optional<bool> {
    if (url != "http://example.org/vs") return std::nullopt;
    return coded.isNode() && coded.typeName() == "Coding";
  };
  EXPECT_EQ(eval("code.coding.memberOf('http://example.org/vs')", observation_), "[true]");
  EXPECT_EQ(eval("code.coding.memberOf('http://example.org/other')", observation_), "[]");
  EXPECT_EQ(eval("conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')"), "[true]");
  EXPECT_EQ(eval("conformsTo('http://hl7.org/fhir/StructureDefinition/Observation')"), "[false]");
  context_.conforms_to = [](std::string_view url, const Item&) -> std::optional<bool> {
    return url == "http://example.org/profile";
  };
  EXPECT_EQ(eval("conformsTo('http://example.org/profile')"), "[true]");
}

TEST_F(FhirpathEvaluator, VariablesAndEnvironment) {
  context_.variables.emplace_back("limit", Collection{Item::integer(2)});
  EXPECT_EQ(eval("name.count() <= %limit"), "[true]");
  EXPECT_EQ(eval("%resource.id | %context.id | %rootResource.id"), R"(["p1"])");
  EXPECT_EQ(eval("%ucum"), R"(["http://unitsofmeasure.org"])");
  EXPECT_EQ(eval("%`vs-administrative-gender`"),
            R"(["http://hl7.org/fhir/ValueSet/administrative-gender"])");
  EXPECT_EQ(eval("%undefined").rfind("error:", 0), 0u);
  context_.now = "2026-11-24T21:00:00.000+00:00";
  EXPECT_EQ(eval("today()"), R"(["@2026-11-24"])");
}

TEST_F(FhirpathEvaluator, OutputFollowsTheCliContract) {
  EXPECT_EQ(eval("'abc' | 1 + 1 | 2.50 | true"), R"(["abc",2,2.50,true])");
  EXPECT_EQ(eval("@2026-10-02 | @2026-10-02T10:00:00Z | @T10:00"),
            R"(["@2026-10-02","@2026-10-02T10:00:00Z","@T10:00"])");
  EXPECT_EQ(eval("5 'mg' | 2 weeks"), R"(["5 'mg'","2 weeks"])");
  EXPECT_EQ(eval("name[0].given"), R"(["Peter","James"])");
  EXPECT_EQ(eval("contained.name | id"), R"(["Contained Org","p1"])");
  EXPECT_EQ(eval("birthDate.type() | 1.type()"),
            R"([{"namespace":"FHIR","name":"date"},{"namespace":"System","name":"Integer"}])");
}

TEST_F(FhirpathEvaluator, DecimalsKeepPrecision) {
  EXPECT_EQ(eval("0.1 + 0.2 = 0.3"), "[true]");
  EXPECT_EQ(eval("1.0 = 1.00"), "[true]");
  EXPECT_EQ(eval("1.50 + 1"), "[2.50]");
  EXPECT_EQ(eval("value.value.toString()", observation_), R"(["185.50"])");
  EXPECT_EQ(eval("10 / 4"), "[2.5]");
}

TEST_F(FhirpathEvaluator, DateTimePrecision) {
  EXPECT_EQ(eval("@2012-04-15 = @2012-04-15T10:00"), "[]");
  EXPECT_EQ(eval("@2012-04 < @2012-05-01"), "[true]");
  EXPECT_EQ(eval("@2012-04 < @2012-04-15"), "[]");
  EXPECT_EQ(eval("@2012-04-15T15:00:00+02:00 = @2012-04-15T16:00:00+03:00"), "[true]");
  EXPECT_EQ(eval("@2019-01-31 + 1 month"), R"(["@2019-02-28"])");
  EXPECT_EQ(eval("@2019-01-31 + 1 'mo'").rfind("error:", 0), 0u);
}

TEST_F(FhirpathEvaluator, EvaluationErrors) {
  EXPECT_EQ(eval("name.given.single()").rfind("error:", 0), 0u);
  EXPECT_EQ(eval("'a' < 1").rfind("error:", 0), 0u);
  EXPECT_EQ(eval("'a' - 'b'").rfind("error:", 0), 0u);
  EXPECT_EQ(eval("1 / 0"), "[]");
  EXPECT_EQ(eval("name.as(HumanName1)").rfind("error:", 0), 0u);
}

TEST_F(FhirpathEvaluator, CoreInvariantsAsTheReferenceValidatorReadsThem) {
  // dom-3 of the R4 core definitions applies as() to a collection.
  constexpr const char* kDom3 =
      "contained.where((('#'+id in (%resource.descendants().reference | "
      "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
      "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() or "
      "descendants().where(as(canonical) = '#').exists() or "
      "descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()";
  EXPECT_EQ(eval(kDom3).rfind("error:", 0), 0u);
  context_.as_requires_singleton = false;
  EXPECT_EQ(eval(kDom3), "[true]");
  json::Document unreferenced;
  ASSERT_TRUE(json::parse(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"x"}]})",
                          unreferenced, error_));
  EXPECT_EQ(eval(kDom3, unreferenced), "[false]");
  // `.is Type` without parentheses appears in published IG invariants.
  EXPECT_EQ(eval("managingOrganization.resolve().is Organization"), "[true]");
}

TEST_F(FhirpathEvaluator, OneExpressionManyThreads) {
  auto compiled = compile("name.where(use = 'official').given.first() & '-' & birthDate.toString()");
  ASSERT_TRUE(compiled.ok());
  ExpressionPtr expression = *compiled;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto result = evaluate(*expression, patient_, context_);
        if (!result.ok() || toJson(*result) != R"(["Peter-1974-12-25"])") ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(FhirpathEvaluator, RegexesWithLiteralAndComputedPatterns) {
  // A literal pattern is compiled once by compile(); a computed one on each evaluation.
  EXPECT_EQ(eval("name.family.first().matches('^Ch.l')"), "[true]");
  EXPECT_EQ(eval("name.family.first().matches('^Ch' + '.l')"), "[true]");
  EXPECT_EQ(eval("name.family.first().matchesFull('Chalm')"), "[false]");
  EXPECT_EQ(eval("name.family.first().replaceMatches('[aeiou]', '_')"), R"(["Ch_lm_rs"])");
  EXPECT_EQ(eval("name.family.first().replaceMatches('[aeiou]' & '', '_')"), R"(["Ch_lm_rs"])");
  // An invalid literal pattern is reported when evaluated, like a computed one.
  EXPECT_EQ(eval("'a'.matches('(')").rfind("error: invalid regular expression", 0), 0u);
  // Unicode property classes run over UTF-8 (RE2), as PCRE does.
  EXPECT_EQ(eval("'Ab'.matches('^\\\\p{L}+$')"), "[true]");
  EXPECT_EQ(eval("'Zoë'.matchesFull('\\\\p{Lu}\\\\p{Ll}+')"), "[true]");
  EXPECT_EQ(eval("'1'.matches('\\\\P{L}')"), "[true]");
  EXPECT_EQ(eval("'p'.matches('\\\\\\\\p')"), "[false]");  // an escaped backslash, then p
  // Single-line mode: '.' matches a newline.
  EXPECT_EQ(eval("'A\\nB'.matchesFull('A.B')"), "[true]");
  // Groups in the replacement, ECMAScript style like fhirpath.js.
  EXPECT_EQ(eval("'11/30/1972'.replaceMatches('(\\\\d+)/(\\\\d+)/(\\\\d+)', '$3-$1-$2')"),
            R"(["1972-11-30"])");
  EXPECT_EQ(eval("'11/30'.replaceMatches('(?<m>\\\\d+)/(?<d>\\\\d+)', '${d}.${m} $$')"),
            R"(["30.11 $"])");
}

TEST_F(FhirpathEvaluator, RegexesThatCannotRunInLinearTimeAreErrors) {
  EXPECT_EQ(eval("'aa'.matches('(a)\\\\1')").rfind("error: unsupported regular expression", 0),
            0u);
  EXPECT_NE(eval("'aa'.matches('(a)\\\\1')").find("backreference"), std::string::npos);
  EXPECT_NE(eval("'ab'.matches('a(?=b)')").find("lookahead"), std::string::npos);
  EXPECT_NE(eval("'ab'.matches('(?<!b)a')").find("lookbehind"), std::string::npos);
  // Computed patterns are checked the same way.
  EXPECT_NE(eval("'ab'.matches('a(?' + '=b)')").find("lookahead"), std::string::npos);
}

TEST_F(FhirpathEvaluator, CatastrophicBacktrackingPatternsAnswerAtOnce) {
  // (a+)+$ over many a's and a final b takes exponential time in a backtracking engine; RE2
  // answers in linear time. The test asserts the answers (ctest's timeout bounds the time).
  std::string as(5000, 'a');
  EXPECT_EQ(eval("'" + as + "b'.matches('(a+)+$')"), "[false]");
  EXPECT_EQ(eval("'" + as + "'.matches('^(a+)+$')"), "[true]");
  EXPECT_EQ(eval("'" + as + "b'.matches('^(a|a)*$')"), "[false]");
  EXPECT_EQ(eval("'" + as + "b'.matches('(x+x+)+y')"), "[false]");
}

TEST_F(FhirpathEvaluator, RegexesOverVeryLongStringsDoNotRecurse) {
  // std::regex recursed once per character of an alternation or a group and crashed (SIGSEGV)
  // on strings of some hundred thousand characters.
  std::string long_text(1'000'000, 'x');
  EXPECT_EQ(eval("'" + long_text + "'.matches('^(x|y)*$')"), "[true]");
  EXPECT_EQ(eval("'" + long_text + "'.matchesFull('(?:[a-z]\\\\.?)+')"), "[true]");
  std::string replaced = eval("'" + long_text + "'.replaceMatches('(x|y)', 'ab').length()");
  EXPECT_EQ(replaced, "[2000000]");
}

TEST_F(FhirpathEvaluator, ResultsOutliveTheThreadThatMadeThem) {
  // Collection buffers come from per-thread free lists; a result handed to another thread is
  // freed there (and the threads that made them have exited).
  auto compiled = compile("name.given | birthDate");
  ASSERT_TRUE(compiled.ok());
  std::vector<Collection> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto result = evaluate(**compiled, patient_, context_);
        if (result.ok()) results[t] = std::move(*result);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const Collection& result : results) {
    // kPatient: given Peter, James, then a given with only `_given` (null per toJson()).
    EXPECT_EQ(toJson(result), R"(["Peter","James",null,"1974-12-25"])");
  }
  results.clear();
}

TEST(FhirpathModel, ColdModelSharedByThreads) {
  // A fresh model: the threads race to load Patient, HumanName, Extension ... on first use.
  auto loaded = Model::load(std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package");
  ASSERT_TRUE(loaded.ok());
  EvaluationContext context;
  context.model = *loaded;
  json::Document patient;
  json::ParseError error;
  ASSERT_TRUE(json::parse(kPatient, patient, error));
  auto compiled = compile(
      "name.given.first() & birthDate.extension.value.toString() & contained.name & "
      "descendants().count().toString()");
  ASSERT_TRUE(compiled.ok());
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      auto result = evaluate(**compiled, patient, context);
      results[t] = result.ok() ? toJson(*result) : result.message();
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    EXPECT_EQ(result, results[0]);
    EXPECT_EQ(result.rfind("[\"Peter1974-12-25T14:35:45-05:00Contained Org", 0), 0u) << result;
  }
}

TEST(FhirpathModel, AnswersTypeQuestions) {
  auto model = Model::bundled();
  EXPECT_TRUE(model->isResourceType("Patient"));
  EXPECT_FALSE(model->isResourceType("HumanName"));
  EXPECT_TRUE(model->isSubtypeOf("Patient", "DomainResource"));
  EXPECT_TRUE(model->isSubtypeOf("Age", "Quantity"));
  EXPECT_FALSE(model->isSubtypeOf("Patient", "Observation"));
  EXPECT_EQ(model->childTypes("Patient", "birthDate"), std::vector<std::string>{"date"});
  auto value_types = model->childTypes("Observation", "value");
  EXPECT_NE(std::find(value_types.begin(), value_types.end(), "Quantity"), value_types.end());
  EXPECT_TRUE(model->childTypes("Patient", "nope").empty());
  EXPECT_EQ(model->type("NoSuchType"), nullptr);
  EXPECT_FALSE(Model::load("/nonexistent/folder").ok());
}

}  // namespace
}  // namespace fhir::fhirpath
