/*
 * Unit tests for backends/sigv4.c against published vectors:
 *  - the AWS SigV4 test suite (aws-sig-v4-test-suite): credentials AKIDEXAMPLE /
 *    wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z, us-east-1, service "service",
 *    host example.amazonaws.com;
 *  - the examples of the S3 "Signature Calculations for the Authorization Header" page:
 *    AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 20130524T000000Z,
 *    us-east-1, s3, host examplebucket.s3.amazonaws.com.
 */
#include "backends/sigv4.h"

#include "check.h"

#define SUITE_TIME 1440938160 /* 2015-08-30T12:36:00Z */
#define S3DOC_TIME 1369353600 /* 2013-05-24T00:00:00Z */

static const struct rfs_sigv4_creds suite_creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
static const struct rfs_sigv4_creds s3_creds = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
						NULL};

#define SUITE_PREFIX "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "

/* Signs a test-suite request and checks the whole Authorization value. */
static void suite_case(const char *name, const char *method, const char *path, const struct rfs_sigv4_kv *q, size_t nq,
		       const struct rfs_sigv4_kv *h, size_t nh, const char *body, const struct rfs_sigv4_creds *creds,
		       const char *expect_auth)
{
	char ph[65];
	rfs_sigv4_payload_hash(body, strlen(body), ph);
	struct rfs_sigv4_request r = {.method = method,
				      .host = "example.amazonaws.com",
				      .path = path,
				      .query = q,
				      .nquery = nq,
				      .headers = h,
				      .nheaders = nh,
				      .payload_hash = ph,
				      .now = SUITE_TIME,
				      .region = "us-east-1",
				      .service = "service",
				      .creds = creds ? creds : &suite_creds};
	struct rfs_sigv4_result res;
	if (!CHECK_OK(rfs_sigv4_sign(&r, &res)))
		return;
	if (!CHECK_STR(res.authorization, expect_auth))
		fprintf(stderr, "  case %s, canonical request:\n%s\n", name, res.canonical_request);
	CHECK_STR(res.amz_date, "20150830T123600Z");
	rfs_sigv4_result_free(&res);
}

static void get_vanilla(void)
{
	suite_case("get-vanilla", "GET", "/", NULL, 0, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void get_vanilla_query_order_key_case(void)
{
	static const struct rfs_sigv4_kv q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
	suite_case("get-vanilla-query-order-key-case", "GET", "/", q, 2, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void get_vanilla_query_order_value(void)
{
	/* same name twice: sorted by value too */
	static const struct rfs_sigv4_kv q[] = {{"Param1", "value2"}, {"Param1", "Value1"}};
	suite_case("get-vanilla-query-order-key", "GET", "/", q, 2, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1");
}

static void get_vanilla_utf8_query(void)
{
	static const struct rfs_sigv4_kv q[] = {{"\xe1\x88\xb4", "bar"}};
	suite_case("get-vanilla-utf8-query", "GET", "/", q, 1, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

static void get_unreserved(void)
{
	suite_case("get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", NULL,
		   0, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
}

static void get_utf8(void)
{
	suite_case("get-utf8", "GET", "/\xe1\x88\xb4", NULL, 0, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

static void get_space(void)
{
	suite_case("get-space", "GET", "/example space/", NULL, 0, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}

static void post_vanilla(void)
{
	suite_case("post-vanilla", "POST", "/", NULL, 0, NULL, 0, "", NULL,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date, "
				"Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

static void post_x_www_form_urlencoded(void)
{
	static const struct rfs_sigv4_kv h[] = {{"Content-Type", "application/x-www-form-urlencoded"}};
	suite_case("post-x-www-form-urlencoded", "POST", "/", NULL, 0, h, 1, "Param1=value1", NULL,
		   SUITE_PREFIX "SignedHeaders=content-type;host;x-amz-date, "
				"Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

static void post_x_www_form_urlencoded_parameters(void)
{
	static const struct rfs_sigv4_kv h[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}};
	suite_case("post-x-www-form-urlencoded-parameters", "POST", "/", NULL, 0, h, 1, "Param1=value1", NULL,
		   SUITE_PREFIX "SignedHeaders=content-type;host;x-amz-date, "
				"Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe");
}

static void post_sts_header_before(void)
{
	static const struct rfs_sigv4_creds c = {
	    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTf"
	    "lfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9H"
	    "FvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYv"
	    "KTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="};
	suite_case("post-sts-header-before", "POST", "/", NULL, 0, NULL, 0, "", &c,
		   SUITE_PREFIX "SignedHeaders=host;x-amz-date;x-amz-security-token, "
				"Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

/* The signer returns the token as a header to add, next to x-amz-date and Authorization. */
static void session_token_header_added(void)
{
	static const struct rfs_sigv4_creds c = {"AK", "SK", "tok en"};
	struct rfs_sigv4_request r = {.method = "GET",
				      .host = "h",
				      .path = "/",
				      .payload_hash = RFS_SIGV4_UNSIGNED,
				      .now = SUITE_TIME,
				      .region = "r",
				      .service = "s3",
				      .add_content_sha256 = 1,
				      .creds = &c};
	struct rfs_sigv4_result res;
	REQUIRE_OK(rfs_sigv4_sign(&r, &res));
	REQUIRE_EQ(res.nheaders, 4);
	CHECK_STR(res.headers[0], "x-amz-date: 20150830T123600Z");
	CHECK_STR(res.headers[1], "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	CHECK_STR(res.headers[2], "x-amz-security-token: tok en");
	CHECK(!strncmp(res.headers[3],
		       "Authorization: AWS4-HMAC-SHA256 Credential=AK/20150830/r/s3/aws4_request, "
		       "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, ",
		       strlen("Authorization: AWS4-HMAC-SHA256 Credential=AK/20150830/r/s3/aws4_request, "
			      "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, ")));
	CHECK(!strstr(res.authorization, "SK"));
	rfs_sigv4_result_free(&res);
}

#define S3DOC_PREFIX "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "

static void s3doc_case(const char *name, const char *method, const char *path, const struct rfs_sigv4_kv *q, size_t nq,
		       const struct rfs_sigv4_kv *h, size_t nh, const char *body, const char *expect)
{
	char ph[65];
	rfs_sigv4_payload_hash(body, strlen(body), ph);
	struct rfs_sigv4_request r = {.method = method,
				      .host = "examplebucket.s3.amazonaws.com",
				      .path = path,
				      .query = q,
				      .nquery = nq,
				      .headers = h,
				      .nheaders = nh,
				      .payload_hash = ph,
				      .now = S3DOC_TIME,
				      .region = "us-east-1",
				      .service = "s3",
				      .add_content_sha256 = 1,
				      .creds = &s3_creds};
	struct rfs_sigv4_result res;
	if (!CHECK_OK(rfs_sigv4_sign(&r, &res)))
		return;
	if (!CHECK_STR(res.authorization, expect))
		fprintf(stderr, "  case %s, canonical request:\n%s\n", name, res.canonical_request);
	rfs_sigv4_result_free(&res);
}

static void s3_get_object_range(void)
{
	static const struct rfs_sigv4_kv h[] = {{"Range", "bytes=0-9"}};
	s3doc_case("GET object", "GET", "/test.txt", NULL, 0, h, 1, "",
		   S3DOC_PREFIX "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
				"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void s3_put_object(void)
{
	static const struct rfs_sigv4_kv h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
						{"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
	s3doc_case("PUT object", "PUT", "/test$file.text", NULL, 0, h, 2, "Welcome to Amazon S3.",
		   S3DOC_PREFIX "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
				"Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void s3_get_bucket_lifecycle(void)
{
	static const struct rfs_sigv4_kv q[] = {{"lifecycle", ""}};
	s3doc_case("GET bucket lifecycle", "GET", "/", q, 1, NULL, 0, "",
		   S3DOC_PREFIX "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
				"Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void s3_list_objects(void)
{
	static const struct rfs_sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	s3doc_case("GET bucket (list objects)", "GET", "/", q, 2, NULL, 0, "",
		   S3DOC_PREFIX "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
				"Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void encode_keys(void)
{
	static const struct {
		const char *in;
		int keep_slash;
		const char *out;
	} cases[] = {
	    {"/a b/c", 1, "/a%20b/c"},       {"/a b/c", 0, "%2Fa%20b%2Fc"}, {"a+b%c~d", 1, "a%2Bb%25c~d"},
	    {"caf\xc3\xa9", 1, "caf%C3%A9"}, {"x=y&z*", 0, "x%3Dy%26z%2A"}, {"", 1, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = rfs_sigv4_encode(cases[i].in, cases[i].keep_slash);
		CHECK_STR(e, cases[i].out);
		free(e);
	}
}

static void canonical_forms(void)
{
	static const struct rfs_sigv4_kv q[] = {{"b", "x y"}, {"a", NULL}, {"a/b", "+"}};
	static const struct rfs_sigv4_kv h[] = {{"My-Header", "  a   b  c "}, {"my-header", "second"}, {"Z", ""}};
	static const struct rfs_sigv4_creds c = {"AK", "SK", NULL};
	struct rfs_sigv4_request r = {.method = "PUT",
				      .host = "127.0.0.1:4600",
				      .path = "/bkt/k +%~/\xe2\x82\xac",
				      .query = q,
				      .nquery = 3,
				      .headers = h,
				      .nheaders = 3,
				      .payload_hash = RFS_SIGV4_EMPTY_SHA256,
				      .now = S3DOC_TIME,
				      .region = "us-east-1",
				      .service = "s3",
				      .add_content_sha256 = 1,
				      .creds = &c};
	struct rfs_sigv4_result res;
	REQUIRE_OK(rfs_sigv4_sign(&r, &res));
	CHECK_STR(res.uri, "/bkt/k%20%2B%25~/%E2%82%AC");
	CHECK_STR(res.query, "a=&a%2Fb=%2B&b=x%20y");
	CHECK_STR(res.canonical_request, "PUT\n/bkt/k%20%2B%25~/%E2%82%AC\na=&a%2Fb=%2B&b=x%20y\n"
					 "host:127.0.0.1:4600\nmy-header:a b c,second\n"
					 "x-amz-content-sha256:" RFS_SIGV4_EMPTY_SHA256 "\n"
					 "x-amz-date:20130524T000000Z\nz:\n\n"
					 "host;my-header;x-amz-content-sha256;x-amz-date;z\n" RFS_SIGV4_EMPTY_SHA256);
	rfs_sigv4_result_free(&res);
	rfs_sigv4_result_free(&res); /* idempotent */
}

static void bad_input(void)
{
	static const struct rfs_sigv4_creds c = {"AK", "SK", NULL};
	static const struct rfs_sigv4_kv bad[] = {{"bad name", "v"}};
	static const struct rfs_sigv4_kv dup[] = {{"X-Amz-Date", "v"}};
	struct rfs_sigv4_request r = {.method = "GET",
				      .host = "h",
				      .path = "/",
				      .payload_hash = RFS_SIGV4_UNSIGNED,
				      .now = S3DOC_TIME,
				      .region = "r",
				      .service = "s3",
				      .creds = &c};
	struct rfs_sigv4_result res;
	r.headers = bad;
	r.nheaders = 1;
	CHECK_ERR(rfs_sigv4_sign(&r, &res), EINVAL);
	r.headers = dup;
	CHECK_ERR(rfs_sigv4_sign(&r, &res), EINVAL);
	r.headers = NULL;
	r.nheaders = 0;
	r.path = "no-slash";
	CHECK_ERR(rfs_sigv4_sign(&r, &res), EINVAL);
	r.path = "/";
	r.creds = NULL;
	CHECK_ERR(rfs_sigv4_sign(&r, &res), EINVAL);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(get_vanilla);
	RUN(get_vanilla_query_order_key_case);
	RUN(get_vanilla_query_order_value);
	RUN(get_vanilla_utf8_query);
	RUN(get_unreserved);
	RUN(get_utf8);
	RUN(get_space);
	RUN(post_vanilla);
	RUN(post_x_www_form_urlencoded);
	RUN(post_x_www_form_urlencoded_parameters);
	RUN(post_sts_header_before);
	RUN(session_token_header_added);
	RUN(s3_get_object_range);
	RUN(s3_put_object);
	RUN(s3_get_bucket_lifecycle);
	RUN(s3_list_objects);
	RUN(encode_keys);
	RUN(canonical_forms);
	RUN(bad_input);
	return check_done();
}
