package nspawn

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestBuildImages builds every tree the end-to-end tests use (each suite's
// and sid's) at once, so a cold machine pays for the slowest debootstrap,
// not for the sum. .ci/run starts it in the background before its lint; in
// `go test ./...` it is the first test of this package. With the trees
// cached it only checks they are there.
func TestBuildImages(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	recipes := []Recipe{SidRecipe()}
	for _, s := range Suites {
		recipes = append(recipes, RecipeFor(s))
	}
	var wg sync.WaitGroup
	for _, r := range recipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			image, err := Image(ctx, DefaultCacheDir, r, t.Logf)
			if err != nil {
				t.Errorf("%s: %v", r.Suite, err)
				return
			}
			t.Logf("%s: %s (%s)", r.Suite, image, time.Since(start).Round(time.Second))
		}()
	}
	wg.Wait()
}
