package vault

import (
	"net/http"
	"slices"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// The cryptographic operations: encrypt, decrypt, wrapKey, unwrapKey, sign
// and verify. Each names a version (or the latest), an algorithm and a
// value; the key must be enabled, within nbf/exp where that applies, and
// carry the operation in its key_ops.

// keyOpName is the key_ops entry (and the word in messages) of an operation.
func keyOpName(op opKind) string {
	for _, c := range cryptoOps {
		if c.op == op {
			return c.keyOp
		}
	}
	return ""
}

// usableFor enforces enabled, nbf, exp and key_ops. As Key Vault documents
// exp, an expired key still decrypts, unwraps and verifies what it produced
// before; it no longer encrypts, wraps or signs new data.
func (s *Service) usableFor(vr *keyVersionRec, op string) *azerr.Error {
	now := s.clk.Now().Unix()
	switch {
	case !vr.Enabled:
		return azerr.Forbidden("Operation %s is not allowed on a disabled key.", op).WithInner(innerKeyDisabled)
	case vr.NotBefore != nil && now < *vr.NotBefore:
		return azerr.Forbidden("Operation %s is not allowed on a key that is not yet valid.", op).WithInner(innerKeyNotYetValid)
	case vr.Expires != nil && now >= *vr.Expires && (op == "encrypt" || op == "wrapKey" || op == "sign"):
		return azerr.Forbidden("Operation %s is not allowed on an expired key.", op).WithInner(innerKeyExpired)
	case !slices.Contains(vr.Ops, op):
		return errKeyOpNotPermitted(op)
	}
	return nil
}

// readKeyOp reads and checks the common parts of a crypto body.
func readKeyOp(rq *request) (*keyOpIn, *azerr.Error) {
	body, e := readBody(rq, maxKeyBodyBytes)
	if e != nil {
		return nil, e
	}
	var in keyOpIn
	if e := decodeJSON(body, &in); e != nil {
		return nil, e
	}
	if in.Alg == nil || *in.Alg == "" {
		return nil, azerr.BadParameter("Property 'alg' (the algorithm) is required.")
	}
	if in.IV != nil || in.AAD != nil || in.Tag != nil {
		return nil, azerr.BadParameter("Properties 'iv', 'aad' and 'tag' apply to symmetric algorithms only, which vault keys do not support.")
	}
	return &in, nil
}

func (s *Service) cryptKey(rq *request) (int, any, error) {
	in, e := readKeyOp(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Value == nil || in.Digest != nil {
		return 0, nil, azerr.BadParameter("Property 'value' is required (and 'digest' does not apply).")
	}
	ctx := rq.r.Context()
	vr, err := s.loadKeyVersion(ctx, rq)
	if err != nil {
		return 0, nil, err
	}
	op := keyOpName(rq.route.Op)
	if e := s.usableFor(vr, op); e != nil {
		return 0, nil, e
	}
	alg, e := encAlgFor(*in.Alg, &vr.keyMeta)
	if e != nil {
		return 0, nil, e
	}
	var out []byte
	switch rq.route.Op {
	case opKeyEncrypt, opKeyWrap:
		out, e = encrypt(s.rand, &vr.keyMeta, alg, *in.Value)
	default:
		k, err := s.openPrivate(ctx, rq, vr)
		if err != nil {
			return 0, nil, err
		}
		out, e = decrypt(k, alg, *in.Value)
	}
	if e != nil {
		return 0, nil, e
	}
	kid := rq.base + "/keys/" + vr.Name + "/" + vr.Version
	rq.info.ObjectID = kid
	return http.StatusOK, keyOpResultWire{Kid: kid, Value: out}, nil
}

func (s *Service) signKey(rq *request) (int, any, error) {
	in, e := readKeyOp(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Value == nil || in.Digest != nil {
		return 0, nil, azerr.BadParameter("Property 'value' (the digest to sign) is required.")
	}
	ctx := rq.r.Context()
	vr, err := s.loadKeyVersion(ctx, rq)
	if err != nil {
		return 0, nil, err
	}
	if e := s.usableFor(vr, "sign"); e != nil {
		return 0, nil, e
	}
	alg, e := sigAlgFor(*in.Alg, &vr.keyMeta, *in.Value)
	if e != nil {
		return 0, nil, e
	}
	k, err := s.openPrivate(ctx, rq, vr)
	if err != nil {
		return 0, nil, err
	}
	sig, e := sign(s.rand, k, alg, *in.Value)
	if e != nil {
		return 0, nil, e
	}
	kid := rq.base + "/keys/" + vr.Name + "/" + vr.Version
	rq.info.ObjectID = kid
	return http.StatusOK, keyOpResultWire{Kid: kid, Value: sig}, nil
}

func (s *Service) verifyKey(rq *request) (int, any, error) {
	in, e := readKeyOp(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Digest == nil || in.Value == nil {
		return 0, nil, azerr.BadParameter("Properties 'digest' and 'value' (the signature) are required.")
	}
	if len(*in.Value) > 1024 {
		return 0, nil, azerr.BadParameter("The signature is too long for any supported key.")
	}
	vr, err := s.loadKeyVersion(rq.r.Context(), rq)
	if err != nil {
		return 0, nil, err
	}
	if e := s.usableFor(vr, "verify"); e != nil {
		return 0, nil, e
	}
	alg, e := sigAlgFor(*in.Alg, &vr.keyMeta, *in.Digest)
	if e != nil {
		return 0, nil, e
	}
	ok, err := verify(&vr.keyMeta, alg, *in.Digest, *in.Value)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	rq.info.ObjectID = rq.base + "/keys/" + vr.Name + "/" + vr.Version
	return http.StatusOK, keyVerifyWire{Value: ok}, nil
}
