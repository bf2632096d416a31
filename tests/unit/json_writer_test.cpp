#include "daemon/json_writer.hpp"

#include <doctest/doctest.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

using namespace retentiond;

namespace {

std::string number(double value) {
  JsonWriter json;
  json.value(value);
  return json.str();
}

// Reads the text back the way a JSON parser would (strtod refuses subnormals).
double read_back(const std::string& text) {
  double value = 0;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  REQUIRE(result.ec == std::errc{});
  REQUIRE(result.ptr == text.data() + text.size());
  return value;
}

}  // namespace

TEST_CASE("json_quote") {
  SUBCASE("plain") {
    CHECK(json_quote("abc") == "\"abc\"");
  }
  SUBCASE("empty") {
    CHECK(json_quote("") == "\"\"");
  }
  SUBCASE("quote and backslash") {
    CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  }
  SUBCASE("short escapes") {
    CHECK(json_quote("\n\r\t\b\f") == "\"\\n\\r\\t\\b\\f\"");
  }
  SUBCASE("other control characters") {
    using namespace std::string_literals;
    CHECK(json_quote("\x01\x1f"s) == "\"\\u0001\\u001f\"");
    CHECK(json_quote("a\0b"s) == "\"a\\u0000b\"");
  }
  SUBCASE("delete and slash are not escaped") {
    CHECK(json_quote("/\x7f") == "\"/\x7f\"");
  }
  SUBCASE("UTF-8 passes through") {
    CHECK(json_quote("café ✓ 😀") == "\"café ✓ 😀\"");
  }
}

TEST_CASE("JsonWriter scalars") {
  SUBCASE("integers") {
    JsonWriter json;
    json.begin_array();
    json.value(std::int64_t{0});
    json.value(std::int64_t{-42});
    json.value(std::numeric_limits<std::int64_t>::max());
    json.value(std::numeric_limits<std::int64_t>::min());
    json.end_array();
    CHECK(json.str() == "[0,-42,9223372036854775807,-9223372036854775808]");
  }
  SUBCASE("booleans and null") {
    JsonWriter json;
    json.begin_array();
    json.value(true);
    json.value(false);
    json.null();
    json.end_array();
    CHECK(json.str() == "[true,false,null]");
  }
  SUBCASE("strings of every overload") {
    JsonWriter json;
    json.begin_array();
    json.value("literal");
    json.value(std::string{"string"});
    json.value(std::string_view{"view"});
    json.end_array();
    CHECK(json.str() == R"(["literal","string","view"])");
  }
  SUBCASE("optional strings") {
    JsonWriter json;
    json.begin_array();
    json.value(std::optional<std::string>{"set"});
    json.value(std::optional<std::string>{});
    json.value(std::optional<std::string>{""});
    json.end_array();
    CHECK(json.str() == R"(["set",null,""])");
  }
}

TEST_CASE("JsonWriter doubles") {
  SUBCASE("half") {
    CHECK(number(0.5) == "0.5");
  }
  SUBCASE("whole") {
    CHECK(number(100.0) == "100");
  }
  SUBCASE("zero") {
    CHECK(number(0.0) == "0");
  }
  SUBCASE("negative") {
    CHECK(number(-2.25) == "-2.25");
  }
  SUBCASE("no binary noise") {
    CHECK(number(0.1) == "0.1");
  }
  SUBCASE("sum is printed exactly enough to round-trip") {
    CHECK(number(0.1 + 0.2) == "0.30000000000000004");
  }
  SUBCASE("large") {
    CHECK(number(1e21) == "1e+21");
  }
  SUBCASE("small") {
    CHECK(read_back(number(1.5e-10)) == 1.5e-10);
  }
  SUBCASE("round trip") {
    for (double value : {1.0 / 3.0, 2.0 / 3.0, 123456.789, 5e-324, 1.7976931348623157e308})
      CHECK(read_back(number(value)) == value);
  }
  SUBCASE("nan is null") {
    CHECK(number(std::nan("")) == "null");
  }
  SUBCASE("infinity is null") {
    CHECK(number(std::numeric_limits<double>::infinity()) == "null");
    CHECK(number(-std::numeric_limits<double>::infinity()) == "null");
  }
  SUBCASE("nan in an array keeps the commas right") {
    JsonWriter json;
    json.begin_array();
    json.value(1.5);
    json.value(std::nan(""));
    json.value(2.5);
    json.end_array();
    CHECK(json.str() == "[1.5,null,2.5]");
  }
}

TEST_CASE("JsonWriter structure") {
  SUBCASE("empty object and array") {
    JsonWriter object;
    object.begin_object();
    object.end_object();
    CHECK(object.str() == "{}");
    JsonWriter array;
    array.begin_array();
    array.end_array();
    CHECK(array.str() == "[]");
  }
  SUBCASE("fields") {
    JsonWriter json;
    json.begin_object();
    json.key("rows");
    json.value(std::int64_t{3});
    json.field("rule", std::string{"logs"});
    json.field("dry_run", true);
    json.end_object();
    CHECK(json.str() == R"({"rows":3,"rule":"logs","dry_run":true})");
  }
  SUBCASE("keys are escaped") {
    JsonWriter json;
    json.begin_object();
    json.field("a\"b", std::int64_t{1});
    json.end_object();
    CHECK(json.str() == R"({"a\"b":1})");
  }
  SUBCASE("nested objects and arrays") {
    JsonWriter json;
    json.begin_object();
    json.field("a", std::int64_t{1});
    json.key("inner");
    json.begin_object();
    json.field("b", std::int64_t{2});
    json.key("list");
    json.begin_array();
    json.value(std::int64_t{1});
    json.begin_object();
    json.end_object();
    json.begin_array();
    json.end_array();
    json.begin_object();
    json.field("c", std::int64_t{3});
    json.end_object();
    json.end_array();
    json.end_object();
    json.key("empty");
    json.begin_array();
    json.end_array();
    json.field("z", false);
    json.end_object();
    CHECK(json.str() == R"({"a":1,"inner":{"b":2,"list":[1,{},[],{"c":3}]},"empty":[],"z":false})");
  }
  SUBCASE("array of arrays") {
    JsonWriter json;
    json.begin_array();
    for (int i = 0; i < 3; ++i) {
      json.begin_array();
      json.value(std::int64_t{i});
      json.value(std::int64_t{i});
      json.end_array();
    }
    json.end_array();
    CHECK(json.str() == "[[0,0],[1,1],[2,2]]");
  }
  SUBCASE("raw values take part in the commas") {
    JsonWriter json;
    json.begin_object();
    json.field("a", std::int64_t{1});
    json.key("detail");
    json.raw(R"({"x":[1,2]})");
    json.key("after");
    json.null();
    json.end_object();
    CHECK(json.str() == R"({"a":1,"detail":{"x":[1,2]},"after":null})");
  }
  SUBCASE("raw in an array") {
    JsonWriter json;
    json.begin_array();
    json.raw("1");
    json.raw("{}");
    json.end_array();
    CHECK(json.str() == "[1,{}]");
  }
  SUBCASE("optional field") {
    JsonWriter json;
    json.begin_object();
    json.field("missing", std::optional<std::string>{});
    json.field("present", std::optional<std::string>{"x"});
    json.end_object();
    CHECK(json.str() == R"({"missing":null,"present":"x"})");
  }
  SUBCASE("double field") {
    JsonWriter json;
    json.begin_object();
    json.field("ratio", 0.5);
    json.end_object();
    CHECK(json.str() == R"({"ratio":0.5})");
  }
}
