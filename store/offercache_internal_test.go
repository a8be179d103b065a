package store

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// referenceFields lists the paths of every slice, map, pointer or interface inside t
// (time.Time counts as a value: its location is shared and immutable).
func referenceFields(t reflect.Type, path string, out *[]string) {
	if t == reflect.TypeFor[time.Time]() {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			referenceFields(f.Type, path+"."+f.Name, out)
		}
	case reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
		*out = append(*out, path)
	case reflect.Pointer:
		*out = append(*out, path)
		referenceFields(t.Elem(), path, out)
	}
}

// TestCloneOfferCoversEveryReference fails when Offer grows a slice, map or pointer that
// cloneOffer does not copy: the cached offer would then be shared with Decide callbacks.
func TestCloneOfferCoversEveryReference(t *testing.T) {
	var got []string
	referenceFields(reflect.TypeFor[tillkeep.Offer](), "Offer", &got)
	want := []string{
		"Offer.Rules.Stores", "Offer.Rules.Zones", "Offer.Rules.Concepts", "Offer.Rules.Tills",
		"Offer.Rules.DaysOfWeek", "Offer.Rules.DaysOfMonth", "Offer.Rules.HoursOfDay",
		"Offer.Rules.NewCustomersOnly", "Offer.Rules.NewCustomersOnly.MaxTransactions",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tillkeep.Offer holds references %v; cloneOffer copies %v: update cloneOffer and this list", got, want)
	}
}

func fullOffer() tillkeep.Offer {
	maxTx := int64(3)
	return tillkeep.Offer{ID: "O", Rules: tillkeep.Rules{
		Stores: []string{"S1"}, Zones: []string{"Z"}, Concepts: []string{"C"}, Tills: []string{"T"},
		DaysOfWeek: []string{"monday"}, DaysOfMonth: []int{1}, HoursOfDay: []int{9},
		NewCustomersOnly: &tillkeep.NewCustomerRule{RegisteredWithinDays: 5, MaxTransactions: &maxTx},
	}}
}

func TestCloneOfferSharesNothing(t *testing.T) {
	orig := fullOffer()
	c := cloneOffer(orig)
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs: %+v", c)
	}
	r := &c.Rules
	r.Stores[0], r.Zones[0], r.Concepts[0], r.Tills[0], r.DaysOfWeek[0] = "x", "x", "x", "x", "x"
	r.DaysOfMonth[0], r.HoursOfDay[0] = 99, 99
	r.NewCustomersOnly.RegisteredWithinDays = 99
	*r.NewCustomersOnly.MaxTransactions = 99
	if !reflect.DeepEqual(orig, fullOffer()) {
		t.Fatalf("changing the clone changed the original: %+v", orig.Rules)
	}
}

// offerSeen records the offer each Decide call was given, and then spoils it, as a
// careless callback might.
func offerSeen(seen *[]tillkeep.Offer) func(tillkeep.LocalState) (tillkeep.JournalEntry, error) {
	return func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		*seen = append(*seen, cloneOffer(st.Offer))
		st.Offer.Name = "spoiled"
		if len(st.Offer.Rules.Stores) > 0 {
			st.Offer.Rules.Stores[0] = "spoiled"
		}
		return acceptAll(st)
	}
}

// TestOfferCacheFollowsCatalog checks that Record's Decide sees every catalog change
// at once — delta, snapshot switch, removal — and never an offer spoiled by an earlier
// callback.
func TestOfferCacheFollowsCatalog(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	snap := testSnapshot()
	snap.Offers[0].Name = "v1"
	snap.Offers[0].Rules.Stores = []string{"S001"}
	if err := db.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	var seen []tillkeep.Offer
	n := 0
	record := func() error {
		n++
		req := recordReq("tx-cache-" + strings.Repeat("i", n))
		req.Decide = offerSeen(&seen)
		_, _, err := db.Record(ctx, req)
		return err
	}
	wantLast := func(name, store string) {
		t.Helper()
		if err := record(); err != nil {
			t.Fatal(err)
		}
		last := seen[len(seen)-1]
		if last.ID != "MULTI" || last.Name != name || len(last.Rules.Stores) != 1 || last.Rules.Stores[0] != store {
			t.Fatalf("Decide saw offer %s %q stores %v, want MULTI %q [%s]", last.ID, last.Name, last.Rules.Stores, name, store)
		}
	}
	wantLast("v1", "S001")
	wantLast("v1", "S001") // from cache, not spoiled by the first callback

	// A delta changes the offer inside the same generation.
	changed := snap.Offers[0]
	changed.Name = "v2"
	changed.Rules.Stores = []string{"S001", "S002"}
	changed.Rules.Stores = changed.Rules.Stores[1:]
	if err := db.ApplyCatalogChanges(ctx, 2, testBase, []tillkeep.Offer{changed}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	wantLast("v2", "S002")
	wantLast("v2", "S002")

	// A snapshot switches generation: offer numbers start again.
	snap2 := testSnapshot()
	snap2.Seq = 3
	snap2.Offers = []tillkeep.Offer{snap2.Offers[1], snap2.Offers[0]} // MULTI gets another number
	snap2.Offers[1].Name = "v3"
	snap2.Offers[1].Rules.Stores = []string{"S003"}
	if err := db.ReplaceCatalog(ctx, snap2); err != nil {
		t.Fatal(err)
	}
	wantLast("v3", "S003")

	// A delta removing the offer removes its coupons: the code is unknown at once.
	if err := db.ApplyCatalogChanges(ctx, 4, testBase, nil, nil, []string{"MULTI"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := record(); tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
		t.Fatalf("record after the offer was removed: %v, want %s", err, tillkeep.CodeUnknownCoupon)
	}

	// Lookup (a read transaction, never cached) agrees with what Record decided on.
	snap3 := testSnapshot()
	snap3.Seq = 5
	snap3.Offers[0].Name = "v4"
	if err := db.ReplaceCatalog(ctx, snap3); err != nil {
		t.Fatal(err)
	}
	st, err := db.Lookup(ctx, "M1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := record(); err != nil {
		t.Fatal(err)
	}
	if last := seen[len(seen)-1]; st.Offer.Name != "v4" || last.Name != "v4" {
		t.Fatalf("Lookup saw %q, Record %q; want v4", st.Offer.Name, last.Name)
	}
}
