package vault

import "github.com/keyhaven/keyhaven/internal/azerr"

func (s *Service) backupCert(rq *request) (int, any, error) {
	return 0, nil, azerr.BadParameter("Certificate backup is not supported yet.")
}

func (s *Service) restoreCert(rq *request) (int, any, error) {
	return 0, nil, azerr.BadParameter("Certificate restore is not supported yet.")
}
