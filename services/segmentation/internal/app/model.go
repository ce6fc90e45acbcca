package app

import (
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/store"
)

// Model returns the model in use and the last run's state.
func (s *App) Model() (*clv.Model, store.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model, s.state
}
