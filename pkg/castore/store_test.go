package castore_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/owned"
)

var secretsResource = schema.GroupResource{Resource: "secrets"}

// wantErr describes the error a Store call should return: nothing, an
// *castore.Error with reason, or a plain (retryable) error wrapping plain.
type wantErr struct {
	reason   string
	plain    error
	contains []string
}

func checkErr(t *testing.T, err error, want wantErr) {
	t.Helper()
	var caErr *castore.Error
	isCAErr := errors.As(err, &caErr)
	switch {
	case want.reason == "" && want.plain == nil:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	case err == nil:
		t.Fatalf("got no error, want %+v", want)
	case want.reason != "":
		if !isCAErr {
			t.Fatalf("error %q (%T) is not a *castore.Error, want reason %s", err, err, want.reason)
		}
		if caErr.Reason != want.reason {
			t.Errorf("reason = %q, want %q (error %q)", caErr.Reason, want.reason, err)
		}
		if !strings.HasPrefix(err.Error(), want.reason+": ") {
			t.Errorf("error %q does not start with its reason %q", err, want.reason)
		}
	default:
		if isCAErr {
			t.Fatalf("error %q is a *castore.Error with reason %s; want a plain retryable error", err, caErr.Reason)
		}
		if !errors.Is(err, want.plain) {
			t.Errorf("error %q does not wrap %q", err, want.plain)
		}
	}
	for _, s := range want.contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	good := newCA(t)
	other := newCA(t, withCACommonName("Other CA"))
	apiDown := apierrors.NewServiceUnavailable("etcd is down")
	tests := []struct {
		name     string
		objects  []client.Object
		getErr   error
		src      quillv1.CASource
		wantCert []byte // PEM of the authority's certificate on success
		want     wantErr
	}{
		{
			name:     "secret-ref-found",
			objects:  []client.Object{newSecret("ca", withCA(good))},
			src:      secretRef("ca"),
			wantCert: good.certPEM,
		},
		{
			name:     "secret-ref-without-ca-crt",
			objects:  []client.Object{newSecret("ca", withCA(good), withoutKey(castore.KeyCACrt))},
			src:      secretRef("ca"),
			wantCert: good.certPEM,
		},
		{
			name:     "bootstrap-secret-found",
			objects:  []client.Object{newSecret("boot", withCA(good), markedBy("QuillIssuer/team-a/issuer"))},
			src:      bootstrap("boot"),
			wantCert: good.certPEM,
		},
		{
			name:     "legacy-bootstrap-secret-found",
			objects:  []client.Object{newSecret("boot", withCA(good), bootstrappedBy("QuillIssuer/team-a/issuer"))},
			src:      bootstrap("boot"),
			wantCert: good.certPEM,
		},
		{
			// spec.ca.bootstrap naming an app's TLS Secret: not Quill's, so
			// not used as the CA.
			name:    "bootstrap-secret-not-created-by-quill",
			objects: []client.Object{newSecret("boot", withCA(good))},
			src:     bootstrap("boot"),
			want:    wantErr{reason: quillv1.ReasonNameCollision, contains: []string{testNamespace + "/boot", "not created by Quill"}},
		},
		{
			name: "picks-the-named-secret",
			objects: []client.Object{
				newSecret("ca", withCA(good)),
				newSecret("other", withCA(other)),
			},
			src:      secretRef("other"),
			wantCert: other.certPEM,
		},
		{
			name: "secret-missing",
			src:  secretRef("ca"),
			want: wantErr{reason: quillv1.ReasonSecretNotFound, contains: []string{testNamespace + "/ca"}},
		},
		{
			name:    "secret-in-another-namespace-only",
			objects: []client.Object{newSecret("ca", withCA(good), inNamespace("team-b"))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonSecretNotFound, contains: []string{testNamespace + "/ca"}},
		},
		{
			name: "bootstrap-secret-missing-is-not-created",
			src:  bootstrap("boot"),
			want: wantErr{reason: quillv1.ReasonSecretNotFound, contains: []string{testNamespace + "/boot"}},
		},
		{
			name:    "secret-lacks-tls-key",
			objects: []client.Object{newSecret("ca", withCA(good), withoutKey(castore.KeyTLSKey))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid, contains: []string{testNamespace + "/ca", castore.KeyTLSKey}},
		},
		{
			name:    "secret-lacks-tls-crt",
			objects: []client.Object{newSecret("ca", withCA(good), withoutKey(castore.KeyTLSCrt))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid, contains: []string{castore.KeyTLSCrt}},
		},
		{
			name: "garbage-certificate-pem",
			objects: []client.Object{newSecret("ca", withCA(good),
				withData(castore.KeyTLSCrt, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")))},
			src:  secretRef("ca"),
			want: wantErr{reason: quillv1.ReasonSecretInvalid, contains: []string{testNamespace + "/ca"}},
		},
		{
			name:    "garbage-key-pem",
			objects: []client.Object{newSecret("ca", withCA(good), withData(castore.KeyTLSKey, []byte("this is not PEM")))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid},
		},
		{
			name:    "key-does-not-match-certificate",
			objects: []client.Object{newSecret("ca", withCA(good), withData(castore.KeyTLSKey, other.keyPEM))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonKeyMismatch, contains: []string{testNamespace + "/ca"}},
		},
		{
			name:    "ca-crt-not-the-root",
			objects: []client.Object{newSecret("ca", withCA(good), withData(castore.KeyCACrt, other.certPEM))},
			src:     secretRef("ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid},
		},
		{
			name:    "api-error-is-plain",
			objects: []client.Object{newSecret("ca", withCA(good))},
			getErr:  apiDown,
			src:     secretRef("ca"),
			want:    wantErr{plain: apiDown, contains: []string{testNamespace + "/ca"}},
		},
		{
			name: "no-source",
			src:  quillv1.CASource{},
			want: wantErr{reason: quillv1.ReasonInvalidConfig, contains: []string{"no CA source"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := []storeOption{withObjects(tt.objects...)}
			if tt.getErr != nil {
				opts = append(opts, withGetError(tt.getErr))
			}
			f := newStore(t, opts...)
			a, err := f.store.Load(context.Background(), testNamespace, tt.src)
			checkErr(t, err, tt.want)
			if tt.wantCert == nil {
				if a != nil {
					t.Errorf("got an authority for %q along with error %v", a.Certificate.Subject, err)
				}
				return
			}
			if a == nil || a.Certificate == nil {
				t.Fatal("got no authority")
			}
			if want := parseCert(t, tt.wantCert); !bytes.Equal(a.Certificate.Raw, want.Raw) {
				t.Errorf("authority certificate is %q, want %q", a.Certificate.Subject, want.Subject)
			}
			if err := a.Check(testNow); err != nil {
				t.Errorf("loaded authority fails its health check: %v", err)
			}
			if got := f.calls.creates.Load() + f.calls.writes.Load(); got != 0 {
				t.Errorf("Load made %d write requests, want none", got)
			}
		})
	}
}

func TestLoadCache(t *testing.T) {
	t.Parallel()
	first := newCA(t, withCACommonName("First CA"))
	rotated := newCA(t, withCACommonName("Rotated CA"))
	ctx := context.Background()
	f := newStore(t, withObjects(newSecret("ca", withCA(first))))
	src := secretRef("ca")

	load := func(step string, wantCA testCA, wantSecretGets, wantMetadataGets int32) {
		t.Helper()
		a, err := f.store.Load(ctx, testNamespace, src)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !bytes.Equal(a.Certificate.Raw, wantCA.cert.Raw) {
			t.Errorf("%s: authority is %q, want %q", step, a.Certificate.Subject, wantCA.cert.Subject)
		}
		if got := f.calls.secretGets.Load(); got != wantSecretGets {
			t.Errorf("%s: %d full Secret reads so far, want %d", step, got, wantSecretGets)
		}
		if got := f.calls.metadataGets.Load(); got != wantMetadataGets {
			t.Errorf("%s: %d metadata reads so far, want %d", step, got, wantMetadataGets)
		}
	}

	load("first-load-reads-secret", first, 1, 0)
	load("unchanged-secret-is-cached", first, 1, 1)
	load("still-cached", first, 1, 2)

	var secret corev1.Secret
	if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "ca"}, &secret); err != nil {
		t.Fatal(err)
	}
	withCA(rotated)(&secret)
	if err := f.api.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	load("changed-resource-version-rereads", rotated, 2, 3)
	load("new-version-is-cached", rotated, 2, 4)
}

func TestLoadCacheForgetsDeletedSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStore(t, withObjects(newSecret("ca", withCA(newCA(t)))))
	if _, err := f.store.Load(ctx, testNamespace, secretRef("ca")); err != nil {
		t.Fatal(err)
	}
	if err := f.api.Delete(ctx, newSecret("ca")); err != nil {
		t.Fatal(err)
	}
	a, err := f.store.Load(ctx, testNamespace, secretRef("ca"))
	checkErr(t, err, wantErr{reason: quillv1.ReasonSecretNotFound})
	if a != nil {
		t.Errorf("got the cached authority %q for a deleted Secret", a.Certificate.Subject)
	}
}

func TestLoadCacheIsPerNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	caA := newCA(t, withCACommonName("Team A CA"))
	caB := newCA(t, withCACommonName("Team B CA"))
	f := newStore(t, withObjects(
		newSecret("ca", withCA(caA)),
		newSecret("ca", withCA(caB), inNamespace("team-b")),
	))
	for range 2 { // the second round is served from the cache
		for ns, want := range map[string]testCA{testNamespace: caA, "team-b": caB} {
			a, err := f.store.Load(ctx, ns, secretRef("ca"))
			if err != nil {
				t.Fatalf("%s: %v", ns, err)
			}
			if !bytes.Equal(a.Certificate.Raw, want.cert.Raw) {
				t.Errorf("namespace %s: authority is %q, want %q", ns, a.Certificate.Subject, want.cert.Subject)
			}
		}
	}
	if got := f.calls.secretGets.Load(); got != 2 {
		t.Errorf("%d full Secret reads, want 2 (one per namespace)", got)
	}
}

// Without a metadata cache the Store asks the API server for the Secret's
// version (a metadata-only read) and reads the full Secret only once.
func TestLoadWithoutMetadataAsksReaderForVersions(t *testing.T) {
	t.Parallel()
	f := newStore(t, withObjects(newSecret("ca", withCA(newCA(t)))), withoutMetadata())
	for range 3 {
		if _, err := f.store.Load(context.Background(), testNamespace, secretRef("ca")); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.calls.secretGets.Load(); got != 1 {
		t.Errorf("%d full Secret reads for 3 loads without a metadata reader, want 1", got)
	}
}

func TestEnsureBootstrapCreatesSecret(t *testing.T) {
	t.Parallel()
	const owner = "QuillIssuer/team-a/issuer"
	tests := []struct {
		name         string
		src          quillv1.CASource
		wantSubject  quillv1.Subject
		wantAlg      issuance.KeyAlgorithm
		wantValidity time.Duration
	}{
		{
			name:         "defaults",
			src:          bootstrap("root-ca"),
			wantSubject:  quillv1.Subject{CommonName: "Bootstrap Root"},
			wantAlg:      issuance.ECDSAP256,
			wantValidity: 10 * 365 * 24 * time.Hour,
		},
		{
			name: "explicit-subject-algorithm-and-validity",
			src: bootstrap("root-ca",
				withBootstrapSubject(quillv1.Subject{
					CommonName:          "Quill Root",
					Organizations:       []string{"Quill"},
					OrganizationalUnits: []string{"PKI"},
					Countries:           []string{"DE"},
				}),
				withBootstrapAlgorithm("ECDSA-P384"),
				withBootstrapValidity(48*time.Hour)),
			wantSubject: quillv1.Subject{
				CommonName:          "Quill Root",
				Organizations:       []string{"Quill"},
				OrganizationalUnits: []string{"PKI"},
				Countries:           []string{"DE"},
			},
			wantAlg:      issuance.ECDSAP384,
			wantValidity: 48 * time.Hour,
		},
		{
			name:         "organization-only-ed25519",
			src:          bootstrap("root-ca", withBootstrapSubject(quillv1.Subject{Organizations: []string{"Quill"}}), withBootstrapAlgorithm("Ed25519")),
			wantSubject:  quillv1.Subject{Organizations: []string{"Quill"}},
			wantAlg:      issuance.Ed25519,
			wantValidity: 10 * 365 * 24 * time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newStore(t)
			a, err := f.store.Ensure(ctx, testNamespace, tt.src, owner)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if got := f.calls.creates.Load(); got != 1 {
				t.Errorf("%d Create calls, want 1", got)
			}

			var secret corev1.Secret
			if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "root-ca"}, &secret); err != nil {
				t.Fatalf("bootstrap Secret was not created: %v", err)
			}
			if secret.Type != corev1.SecretTypeTLS {
				t.Errorf("Secret type = %q, want %q", secret.Type, corev1.SecretTypeTLS)
			}
			if got := secret.Annotations[castore.AnnotationBootstrappedBy]; got != owner {
				t.Errorf("annotation %s = %q, want %q", castore.AnnotationBootstrappedBy, got, owner)
			}
			if !owned.Marked(&secret, owner) {
				t.Errorf("labels %v annotations %v: the Secret lacks the ownership mark naming %s", secret.Labels, secret.Annotations, owner)
			}
			keys := slices.Sorted(maps.Keys(secret.Data))
			if want := []string{castore.KeyCACrt, castore.KeyTLSCrt, castore.KeyTLSKey}; !slices.Equal(keys, want) {
				t.Errorf("Secret keys = %v, want %v", keys, want)
			}
			if !bytes.Equal(secret.Data[castore.KeyCACrt], secret.Data[castore.KeyTLSCrt]) {
				t.Error("ca.crt differs from tls.crt for a self-signed root")
			}
			stored, err := issuance.LoadAuthority(secret.Data[castore.KeyTLSCrt], secret.Data[castore.KeyTLSKey], secret.Data[castore.KeyCACrt])
			if err != nil {
				t.Fatalf("stored Secret does not hold a usable CA: %v", err)
			}

			if !bytes.Equal(a.Certificate.Raw, stored.Certificate.Raw) {
				t.Error("Ensure returned a different CA from the one it stored")
			}
			c := a.Certificate
			if c.Subject.CommonName != tt.wantSubject.CommonName ||
				!slices.Equal(c.Subject.Organization, tt.wantSubject.Organizations) ||
				!slices.Equal(c.Subject.OrganizationalUnit, tt.wantSubject.OrganizationalUnits) ||
				!slices.Equal(c.Subject.Country, tt.wantSubject.Countries) {
				t.Errorf("CA subject = %q, want %+v", c.Subject, tt.wantSubject)
			}
			if got := a.Summary().KeyAlgorithm; got != tt.wantAlg {
				t.Errorf("CA key algorithm = %s, want %s", got, tt.wantAlg)
			}
			if want := testNow.Add(tt.wantValidity); !c.NotAfter.Equal(want) {
				t.Errorf("CA notAfter = %s, want %s (the Store's clock plus the validity)", c.NotAfter, want)
			}
			if !c.IsCA || !bytes.Equal(c.RawIssuer, c.RawSubject) {
				t.Errorf("bootstrap CA is not a self-signed CA (isCA=%t, issuer %q)", c.IsCA, c.Issuer)
			}
			if err := a.Check(testNow); err != nil {
				t.Errorf("bootstrap CA fails its health check: %v", err)
			}

			again, err := f.store.Ensure(ctx, testNamespace, tt.src, owner)
			if err != nil {
				t.Fatalf("second Ensure: %v", err)
			}
			if !bytes.Equal(again.Certificate.Raw, c.Raw) {
				t.Error("second Ensure returned a different CA; it must reuse the Secret")
			}
			if got := f.calls.creates.Load(); got != 1 {
				t.Errorf("%d Create calls after a second Ensure, want still 1", got)
			}
		})
	}
}

func TestEnsureLosesCreateRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	winner := newCA(t, withCACommonName("Winner CA"))
	var generated *corev1.Secret
	f := newStore(t, withCreate(func(ctx context.Context, c client.WithWatch, obj client.Object) error {
		// Another replica creates the Secret between our read and our
		// create, so the API server refuses ours.
		generated = obj.(*corev1.Secret).DeepCopy()
		if err := c.Create(ctx, newSecret(obj.GetName(), withCA(winner), markedBy("QuillClusterIssuer/main"))); err != nil {
			return err
		}
		return apierrors.NewAlreadyExists(secretsResource, obj.GetName())
	}))
	a, err := f.store.Ensure(ctx, testNamespace, bootstrap("root-ca"), "QuillClusterIssuer/main")
	if err != nil {
		t.Fatalf("Ensure after losing the race: %v", err)
	}
	if generated == nil {
		t.Fatal("Ensure never tried to create the Secret")
	}
	if !bytes.Equal(a.Certificate.Raw, winner.cert.Raw) {
		t.Errorf("Ensure returned %q, want the winner's CA %q", a.Certificate.Subject, winner.cert.Subject)
	}
	if lost := parseCert(t, generated.Data[castore.KeyTLSCrt]); bytes.Equal(a.Certificate.Raw, lost.Raw) {
		t.Error("Ensure returned the CA it generated, not the one stored")
	}
	var secret corev1.Secret
	if err := f.api.Get(ctx, types.NamespacedName{Namespace: testNamespace, Name: "root-ca"}, &secret); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret.Data[castore.KeyTLSKey], winner.keyPEM) {
		t.Error("the winner's Secret was replaced")
	}
	if got := f.calls.writes.Load(); got != 0 {
		t.Errorf("%d update/patch/delete calls, want none", got)
	}
}

func TestEnsureDoesNotCreate(t *testing.T) {
	t.Parallel()
	const owner = "QuillIssuer/team-a/issuer"
	good := newCA(t)
	other := newCA(t, withCACommonName("Other CA"))
	apiDown := apierrors.NewServiceUnavailable("etcd is down")
	tests := []struct {
		name     string
		objects  []client.Object
		getErr   error
		src      quillv1.CASource
		wantCert []byte
		want     wantErr
	}{
		{
			name:     "existing-bootstrap-secret-is-used",
			objects:  []client.Object{newSecret("root-ca", withCA(good), markedBy(owner))},
			src:      bootstrap("root-ca"),
			wantCert: good.certPEM,
		},
		{
			name:     "legacy-bootstrap-secret-is-used",
			objects:  []client.Object{newSecret("root-ca", withCA(good), bootstrappedBy(owner))},
			src:      bootstrap("root-ca"),
			wantCert: good.certPEM,
		},
		{
			name:    "unmarked-secret-is-a-collision",
			objects: []client.Object{newSecret("root-ca", withCA(good))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonNameCollision, contains: []string{testNamespace + "/root-ca", "no Quill ownership mark"}},
		},
		{
			name:    "another-issuers-secret-is-a-collision",
			objects: []client.Object{newSecret("root-ca", withCA(good), markedBy("QuillIssuer/team-a/other"))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonNameCollision, contains: []string{"QuillIssuer/team-a/other"}},
		},
		{
			name:    "another-issuers-legacy-secret-is-a-collision",
			objects: []client.Object{newSecret("root-ca", withCA(good), bootstrappedBy("QuillIssuer/team-a/other"))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonNameCollision},
		},
		{
			name:    "corrupt-pem-is-not-overwritten",
			objects: []client.Object{newSecret("root-ca", withCA(good), withData(castore.KeyTLSCrt, []byte("garbage")), markedBy(owner))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid},
		},
		{
			name:    "missing-key-is-not-overwritten",
			objects: []client.Object{newSecret("root-ca", withCA(good), withoutKey(castore.KeyTLSKey), markedBy(owner))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid},
		},
		{
			name:    "empty-secret-is-not-overwritten",
			objects: []client.Object{newSecret("root-ca", markedBy(owner))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonSecretInvalid},
		},
		{
			name:    "mismatched-key-is-not-overwritten",
			objects: []client.Object{newSecret("root-ca", withCA(good), withData(castore.KeyTLSKey, other.keyPEM), markedBy(owner))},
			src:     bootstrap("root-ca"),
			want:    wantErr{reason: quillv1.ReasonKeyMismatch},
		},
		{
			name: "missing-secret-ref-is-not-created",
			src:  secretRef("ca"),
			want: wantErr{reason: quillv1.ReasonSecretNotFound, contains: []string{testNamespace + "/ca"}},
		},
		{
			name:   "api-error-is-plain-and-creates-nothing",
			getErr: apiDown,
			src:    bootstrap("root-ca"),
			want:   wantErr{plain: apiDown},
		},
		{
			name: "no-source",
			src:  quillv1.CASource{},
			want: wantErr{reason: quillv1.ReasonInvalidConfig},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := []storeOption{withObjects(tt.objects...)}
			if tt.getErr != nil {
				opts = append(opts, withGetError(tt.getErr))
			}
			f := newStore(t, opts...)
			before := map[string]map[string][]byte{}
			for _, o := range tt.objects {
				before[o.GetName()] = maps.Clone(o.(*corev1.Secret).Data)
			}

			a, err := f.store.Ensure(ctx, testNamespace, tt.src, owner)
			checkErr(t, err, tt.want)
			if tt.wantCert != nil {
				if a == nil || !bytes.Equal(a.Certificate.Raw, parseCert(t, tt.wantCert).Raw) {
					t.Error("Ensure did not return the existing CA")
				}
			} else if a != nil {
				t.Errorf("got an authority %q along with error %v", a.Certificate.Subject, err)
			}
			if got := f.calls.creates.Load(); got != 0 {
				t.Errorf("%d Create calls, want none", got)
			}
			if got := f.calls.writes.Load(); got != 0 {
				t.Errorf("%d update/patch/delete calls, want none", got)
			}
			var list corev1.SecretList
			if err := f.api.List(ctx, &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != len(tt.objects) {
				t.Errorf("%d Secrets exist, want %d", len(list.Items), len(tt.objects))
			}
			for _, s := range list.Items {
				if !maps.EqualFunc(s.Data, before[s.Name], bytes.Equal) {
					t.Errorf("Secret %s was modified", s.Name)
				}
			}
		})
	}
}

func TestEnsureCreateFailureIsPlain(t *testing.T) {
	t.Parallel()
	forbidden := apierrors.NewForbidden(secretsResource, "root-ca", errors.New("no create permission"))
	f := newStore(t, withCreate(func(context.Context, client.WithWatch, client.Object) error { return forbidden }))
	a, err := f.store.Ensure(context.Background(), testNamespace, bootstrap("root-ca"), "QuillIssuer/team-a/issuer")
	checkErr(t, err, wantErr{plain: forbidden, contains: []string{testNamespace + "/root-ca"}})
	if a != nil {
		t.Errorf("got an authority %q although the Secret could not be created", a.Certificate.Subject)
	}
	if got := f.calls.creates.Load(); got != 1 {
		t.Errorf("%d Create calls, want 1", got)
	}
}

func TestSecretName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  quillv1.CASource
		want string
	}{
		{name: "secret-ref", src: secretRef("my-ca"), want: "my-ca"},
		{name: "bootstrap", src: bootstrap("root-ca"), want: "root-ca"},
		{name: "no-source", src: quillv1.CASource{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := castore.SecretName(tt.src); got != tt.want {
				t.Errorf("SecretName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("tls.key is missing")
	var err error = &castore.Error{Reason: quillv1.ReasonSecretInvalid, Err: cause}
	if got, want := err.Error(), "SecretInvalid: tls.key is missing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Error("*castore.Error does not unwrap to its cause")
	}
}

func TestSecretNames(t *testing.T) {
	t.Parallel()
	hsm := func(certSecret, certLabel string) quillv1.CASource {
		p := &quillv1.PKCS11CA{Module: "hsm", TokenLabel: "t", KeyLabel: "k", PINSecretRef: quillv1.SecretKeySelector{Name: "pin"}, CertificateLabel: certLabel}
		if certSecret != "" {
			p.CertificateSecretRef = &quillv1.SecretReference{Name: certSecret}
		}
		return quillv1.CASource{PKCS11: p}
	}
	tests := []struct {
		name string
		src  quillv1.CASource
		want []string
	}{
		{name: "secret-ref", src: secretRef("my-ca"), want: []string{"my-ca"}},
		{name: "bootstrap", src: bootstrap("root-ca"), want: []string{"root-ca"}},
		{name: "hsm-certificate-in-secret", src: hsm("hsm-ca", ""), want: []string{"hsm-ca", "pin"}},
		{name: "hsm-certificate-on-token", src: hsm("", "ca"), want: []string{"pin"}},
		{name: "no-source", src: quillv1.CASource{}, want: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := castore.SecretNames(tt.src); !slices.Equal(got, tt.want) {
				t.Errorf("SecretNames = %q, want %q", got, tt.want)
			}
		})
	}
}
