/* Unit tests for fs/acl.c: the xattr form of POSIX ACLs, validation, and the mode rules
 * (equivalence, chmod, create-time masking) checked against what the kernel's posix_acl.c
 * gives for the same inputs. */
#include <sys/stat.h>

#include "check.h"
#include "fs/acl.h"

#define U_OBJ 0x01
#define U 0x02
#define G_OBJ 0x04
#define G 0x08
#define MASK 0x10
#define OTHER 0x20

static void set(struct rfs_acl *a, size_t n, const struct rfs_acl_entry *e)
{
	a->n = n;
	memcpy(a->e, e, n * sizeof(*e));
}

static uint16_t perm_of(const struct rfs_acl *a, uint16_t tag)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].tag == tag)
			return a->e[i].perm;
	return 0xffff;
}

static void acl_round_trip_and_wire_format(void)
{
	static struct rfs_acl a, b;
	const struct rfs_acl_entry e[] = {{U_OBJ, 6, 0xffffffffu},
					  {U, 4, 65534},
					  {G_OBJ, 0, 0xffffffffu},
					  {MASK, 4, 0xffffffffu},
					  {OTHER, 0, 0xffffffffu}};
	set(&a, 5, e);
	REQUIRE_EQ(rfs_acl_size(&a), 44);
	uint8_t buf[44];
	rfs_acl_write(&a, buf);
	/* version 2 little-endian, then the second entry: tag 2, perm 4, id 65534 */
	const uint8_t head[] = {2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 0xfe, 0xff, 0, 0};
	CHECK_MEM(buf, head, sizeof(head));
	CHECK_OK(rfs_acl_parse(buf, sizeof(buf), &b));
	CHECK_EQ(b.n, 5);
	CHECK_MEM(b.e, a.e, 5 * sizeof(a.e[0]));
}

static void acl_parse_rejects_invalid(void)
{
	static struct rfs_acl a, b;
	uint8_t buf[64] = {0};
	CHECK_ERR(rfs_acl_parse(buf, 3, &b), EINVAL);
	/* a named user without a mask */
	const struct rfs_acl_entry nomask[] = {{U_OBJ, 6, 0}, {U, 4, 7}, {G_OBJ, 0, 0}, {OTHER, 0, 0}};
	set(&a, 4, nomask);
	rfs_acl_write(&a, buf);
	CHECK_ERR(rfs_acl_parse(buf, rfs_acl_size(&a), &b), EINVAL);
	/* no owning group */
	const struct rfs_acl_entry nogroup[] = {{U_OBJ, 6, 0}, {OTHER, 0, 0}};
	set(&a, 2, nogroup);
	rfs_acl_write(&a, buf);
	CHECK_ERR(rfs_acl_parse(buf, rfs_acl_size(&a), &b), EINVAL);
	/* out of order, and a permission beyond rwx */
	const struct rfs_acl_entry order[] = {{G_OBJ, 0, 0}, {U_OBJ, 6, 0}, {OTHER, 0, 0}};
	set(&a, 3, order);
	rfs_acl_write(&a, buf);
	CHECK_ERR(rfs_acl_parse(buf, rfs_acl_size(&a), &b), EINVAL);
	const struct rfs_acl_entry perm[] = {{U_OBJ, 8, 0}, {G_OBJ, 0, 0}, {OTHER, 0, 0}};
	set(&a, 3, perm);
	rfs_acl_write(&a, buf);
	CHECK_ERR(rfs_acl_parse(buf, rfs_acl_size(&a), &b), EINVAL);
	/* wrong version */
	const struct rfs_acl_entry ok[] = {{U_OBJ, 6, 0}, {G_OBJ, 0, 0}, {OTHER, 0, 0}};
	set(&a, 3, ok);
	rfs_acl_write(&a, buf);
	CHECK_OK(rfs_acl_parse(buf, rfs_acl_size(&a), &b));
	buf[0] = 1;
	CHECK_ERR(rfs_acl_parse(buf, rfs_acl_size(&a), &b), EINVAL);
}

static void acl_equiv_mode(void)
{
	static struct rfs_acl a;
	const struct rfs_acl_entry minimal[] = {{U_OBJ, 7, 0}, {G_OBJ, 5, 0}, {OTHER, 0, 0}};
	set(&a, 3, minimal);
	uint32_t mode = S_IFREG | S_ISUID | 0644;
	CHECK_EQ(rfs_acl_equiv_mode(&a, &mode), 0);
	CHECK_EQ(mode, S_IFREG | S_ISUID | 0750); /* type and setuid kept */
	const struct rfs_acl_entry ext[] = {{U_OBJ, 6, 0}, {U, 7, 1000}, {G_OBJ, 7, 0}, {MASK, 4, 0}, {OTHER, 1, 0}};
	set(&a, 5, ext);
	mode = S_IFDIR | 0777;
	CHECK_EQ(rfs_acl_equiv_mode(&a, &mode), 1);
	CHECK_EQ(mode, S_IFDIR | 0641); /* the group class is the mask's */
}

static void acl_chmod_moves_mask_not_group(void)
{
	static struct rfs_acl a;
	const struct rfs_acl_entry ext[] = {{U_OBJ, 6, 0}, {U, 7, 1000}, {G_OBJ, 7, 0}, {MASK, 7, 0}, {OTHER, 4, 0}};
	set(&a, 5, ext);
	rfs_acl_chmod(&a, 0710);
	CHECK_EQ(perm_of(&a, U_OBJ), 7);
	CHECK_EQ(perm_of(&a, MASK), 1);
	CHECK_EQ(perm_of(&a, G_OBJ), 7); /* untouched: the mask carries the group class */
	CHECK_EQ(perm_of(&a, OTHER), 0);
	CHECK_EQ(perm_of(&a, U), 7);
	const struct rfs_acl_entry minimal[] = {{U_OBJ, 7, 0}, {G_OBJ, 5, 0}, {OTHER, 5, 0}};
	set(&a, 3, minimal);
	rfs_acl_chmod(&a, 0640);
	CHECK_EQ(perm_of(&a, G_OBJ), 4);
}

static void acl_create_masq(void)
{
	static struct rfs_acl a;
	/* setfacl -d -m u:65534:rwx on a 0755 directory, then open(..., 0666) */
	const struct rfs_acl_entry dflt[] = {{U_OBJ, 7, 0}, {U, 7, 65534}, {G_OBJ, 5, 0}, {MASK, 7, 0}, {OTHER, 5, 0}};
	set(&a, 5, dflt);
	uint32_t mode = S_IFREG | 0666;
	CHECK_EQ(rfs_acl_create_masq(&a, &mode), 1);
	CHECK_EQ(mode, S_IFREG | 0664);
	CHECK_EQ(perm_of(&a, U_OBJ), 6);
	CHECK_EQ(perm_of(&a, MASK), 6);
	CHECK_EQ(perm_of(&a, OTHER), 4);
	CHECK_EQ(perm_of(&a, U), 7); /* named entries keep their rights; the mask limits them */
	CHECK_EQ(perm_of(&a, G_OBJ), 5);
	/* a minimal default ACL: the mode is the intersection, nothing extended */
	const struct rfs_acl_entry minimal[] = {{U_OBJ, 7, 0}, {G_OBJ, 0, 0}, {OTHER, 0, 0}};
	set(&a, 3, minimal);
	mode = S_IFDIR | S_ISGID | 0777;
	CHECK_EQ(rfs_acl_create_masq(&a, &mode), 0);
	CHECK_EQ(mode, S_IFDIR | S_ISGID | 0700);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(acl_round_trip_and_wire_format);
	RUN(acl_parse_rejects_invalid);
	RUN(acl_equiv_mode);
	RUN(acl_chmod_moves_mask_not_group);
	RUN(acl_create_masq);
	return check_done();
}
