package devices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/carehub/carehub/internal/catalog"
)

// maxNameRunes bounds a resident's or home's name; longer input is a client
// bug or an attack, not a name.
const maxNameRunes = 200

// minBirthYear is the earliest plausible birth year of a living resident.
const minBirthYear = 1900

// CreateHome stores a new home. An empty ID gets a generated one ("h-...").
// An existing id is ErrConflict.
func (r *Registry) CreateHome(ctx context.Context, h Home) (Home, error) {
	if h.ID != "" && !catalog.ValidID(h.ID) {
		return Home{}, invalid("id", "home id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$", h.ID)
	}
	if utf8.RuneCountInString(h.Name) > maxNameRunes {
		return Home{}, invalid("name", "home name longer than %d characters", maxNameRunes)
	}
	now := r.now().UTC()
	_, rev, v, err := createWithID(ctx, r.homes, h.ID, "h-", func(id string) any {
		out := h
		out.ID, out.CreatedAt, out.UpdatedAt = id, now, now
		return out
	})
	if err != nil {
		return Home{}, err
	}
	out := v.(Home)
	r.homeTab.Put(out.ID, out, rev)
	return out, nil
}

// Home returns a home from memory.
func (r *Registry) Home(id string) (Home, bool) { return r.homeTab.Get(id) }

// Homes returns every home, sorted by id.
func (r *Registry) Homes() []Home {
	return sortByID(r.homeTab.List(nil), func(h Home) string { return h.ID })
}

// CreateResident stores a new resident. The home is created implicitly when
// home_id is unknown, because POST /residents takes a home_id (contract §4)
// and there is no separate endpoint for homes. An empty ID gets a generated
// one ("r-..."); an existing id is ErrConflict.
func (r *Registry) CreateResident(ctx context.Context, res Resident) (Resident, error) {
	if err := validateResident(res, r.now().Year()); err != nil {
		return Resident{}, err
	}
	if res.ID != "" {
		// Late messages of an erased resident are dropped by their id; a
		// new resident under it would lose theirs, or get the old ones.
		// Read through to KV: another instance may have erased it just now.
		if _, erased, err := readThrough(ctx, r.erased, r.erasedTab, res.ID); err != nil {
			return Resident{}, err
		} else if erased {
			return Resident{}, fmt.Errorf("%w: resident id %q belonged to an erased resident and is not reused", ErrConflict, res.ID)
		}
	}
	if _, err := r.ensureHome(ctx, res.HomeID); err != nil {
		return Resident{}, err
	}
	now := r.now().UTC()
	_, rev, v, err := createWithID(ctx, r.residents, res.ID, "r-", func(id string) any {
		out := res
		out.ID, out.CreatedAt, out.UpdatedAt = id, now, now
		return out
	})
	if err != nil {
		return Resident{}, err
	}
	out := v.(Resident)
	r.residentTab.Put(out.ID, out, rev)
	return out, nil
}

func validateResident(res Resident, thisYear int) error {
	if res.ID != "" && !catalog.ValidID(res.ID) {
		return invalid("id", "resident id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$", res.ID)
	}
	if res.ID == "batch" {
		// care.readings.batch.* carries batched readings (contract §3): a
		// resident of that id would share the subjects, and erasing them
		// would purge every resident's batches.
		return invalid("id", `resident id "batch" is reserved: choose another id`)
	}
	if strings.TrimSpace(res.Name) == "" {
		return invalid("name", "resident name is required")
	}
	if !utf8.ValidString(res.Name) {
		return invalid("name", "resident name is not valid UTF-8")
	}
	if utf8.RuneCountInString(res.Name) > maxNameRunes {
		return invalid("name", "resident name longer than %d characters", maxNameRunes)
	}
	if res.HomeID == "" {
		return invalid("home_id", "home_id is required")
	}
	if !catalog.ValidID(res.HomeID) {
		return invalid("home_id", "home_id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$", res.HomeID)
	}
	if res.BirthYear != 0 && (res.BirthYear < minBirthYear || res.BirthYear > thisYear) {
		return invalid("birth_year", "birth_year %d outside %d..%d", res.BirthYear, minBirthYear, thisYear)
	}
	return nil
}

// ensureHome returns the home with id, creating it if it does not exist. Two
// instances creating the same home at once both succeed.
func (r *Registry) ensureHome(ctx context.Context, id string) (Home, error) {
	h, ok, err := readThrough(ctx, r.homes, r.homeTab, id)
	if err != nil || ok {
		return h, err
	}
	h, err = r.CreateHome(ctx, Home{ID: id})
	if errors.Is(err, ErrConflict) {
		h, _, err = readThrough(ctx, r.homes, r.homeTab, id)
	}
	return h, err
}

// Resident returns a resident from memory.
func (r *Registry) Resident(id string) (Resident, bool) { return r.residentTab.Get(id) }

// Residents returns every resident, sorted by id.
func (r *Registry) Residents() []Resident {
	return sortByID(r.residentTab.List(nil), func(x Resident) string { return x.ID })
}
